package watcher_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/orbit-workbench/orbit-controller/pkg/kube"
	"github.com/orbit-workbench/orbit-controller/pkg/testenv"

	"github.com/orbit-workbench/orbit-controller/services/poddefaults-watcher/internal/poddefaults"
	"github.com/orbit-workbench/orbit-controller/services/poddefaults-watcher/watcher"
)

// Benchmarks of the fan-out. Run them once each (every iteration adds hundreds of objects):
//
//	go test -run '^$' -bench . -benchtime 1x ./watcher/
//
// Fairness: the watcher and the plain client get the same rest.Config — the production client
// limits of pkg/kube (QPS 200, burst 400), not testenv's raised ones — and the same number of
// writes in flight (the watcher's default write concurrency, 32). Both are timed the same way:
// from the first request until a separate observer (an informer on all PodDefaults) has seen
// the last object appear, so watch delivery counts against both.

const benchUsers = 500

var fanOutFixture struct {
	team  string
	users []string
	// runs numbers the iterations across calls, so every iteration has its own object names.
	runs int
}

// benchTeam creates a team namespace that outlives the benchmark call (see userNamespaces).
func benchTeam(b *testing.B) string {
	name := "bench-" + suffix()
	_, err := env.Clientset.CoreV1().Namespaces().Create(b.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{poddefaults.LabelSpace: poddefaults.SpaceTeam, poddefaults.LabelTeam: name}}}, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return name
}

// productionConfig is env.Config with the client limits a deployed service has.
func productionConfig() *rest.Config {
	cfg := rest.CopyConfig(env.Config)
	def := kube.DefaultOptions()
	cfg.QPS, cfg.Burst = def.QPS, def.Burst
	return cfg
}

// observer records when each PodDefault was first seen, by namespace/name.
type observer struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func observe(b *testing.B) *observer {
	o := &observer{seen: map[string]time.Time{}}
	inf := dynamicinformer.NewFilteredDynamicInformer(env.Dynamic, poddefaults.GVR, metav1.NamespaceAll, 0, cache.Indexers{}, nil).Informer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		if pd, ok := obj.(*unstructured.Unstructured); ok {
			now := time.Now()
			o.mu.Lock()
			o.seen[pd.GetNamespace()+"/"+pd.GetName()] = now
			o.mu.Unlock()
		}
	}})
	ctx, cancel := context.WithCancel(context.WithoutCancel(b.Context()))
	done := make(chan struct{})
	go func() { inf.RunWithContext(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		b.Fatal("observer did not sync")
	}
	return o
}

// wait blocks until every key has been seen and returns the time the last one was.
func (o *observer) wait(b *testing.B, timeout time.Duration, keys []string) time.Time {
	deadline := time.Now().Add(timeout)
	for {
		o.mu.Lock()
		var last time.Time
		missing := 0
		for _, k := range keys {
			at, ok := o.seen[k]
			if !ok {
				missing++
				continue
			}
			if at.After(last) {
				last = at
			}
		}
		o.mu.Unlock()
		if missing == 0 {
			return last
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d PodDefaults not seen within %s", missing, len(keys), timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// userNamespaces creates n user namespaces of team concurrently and waits until the
// controller manager has finished with them (their default ServiceAccount exists), so that
// work does not run during the measurement. They are not deleted: deleting hundreds of
// namespaces would load the control plane during the next measurement, and the control plane
// is thrown away when the package's run ends.
func userNamespaces(b *testing.B, team string, n int) []string {
	names := make([]string, n)
	var g errgroup.Group
	g.SetLimit(32)
	for i := range n {
		names[i] = fmt.Sprintf("%s-u%03d", team, i)
		g.Go(func() error {
			_, err := env.Clientset.CoreV1().Namespaces().Create(b.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: names[i],
				Labels: map[string]string{poddefaults.LabelSpace: poddefaults.SpaceUser, poddefaults.LabelTeam: team}}}, metav1.CreateOptions{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	testenv.Eventually(b, 120*time.Second, func(ctx context.Context) (bool, string) {
		list, err := env.Clientset.CoreV1().ServiceAccounts(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=default"})
		if err != nil {
			return false, err.Error()
		}
		count := 0
		for _, sa := range list.Items {
			if strings.HasPrefix(sa.Namespace, team+"-u") {
				count++
			}
		}
		return count == n, fmt.Sprintf("%d of %d namespaces have their service account", count, n)
	})
	return names
}

func benchPodDefault(namespace, name string, labels, annotations map[string]string) *unstructured.Unstructured {
	pd := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{
		"desc":     "benchmark " + name,
		"selector": map[string]any{"matchLabels": map[string]any{"orbit/" + name: ""}},
		"env":      []any{map[string]any{"name": "BENCH", "value": name}},
	}}}
	pd.SetGroupVersionKind(poddefaults.GVK)
	pd.SetNamespace(namespace)
	pd.SetName(name)
	pd.SetLabels(labels)
	pd.SetAnnotations(annotations)
	return pd
}

func startBenchWatcher(b *testing.B) {
	opts := watcher.DefaultOptions()
	opts.Namespace = env.Namespace(b, "ctl", nil).Name
	w, err := watcher.New(productionConfig(), opts)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(b.Context()))
	ctx = benchLogger().WithContext(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	testenv.Eventually(b, 60*time.Second, func(ctx context.Context) (bool, string) {
		return w.Ready(ctx) == nil && w.Leading(), "watcher not ready"
	})
}

// BenchmarkFanOutTeamPodDefaultTo500Users: a new team PodDefault reaches 500 user namespaces,
// against a plain client creating the same 500 objects.
func BenchmarkFanOutTeamPodDefaultTo500Users(b *testing.B) {
	// The testing package calls a benchmark more than once (b.N = 1 first); the namespaces are
	// made on the first call only.
	if fanOutFixture.team == "" {
		fanOutFixture.team = benchTeam(b)
		fanOutFixture.users = userNamespaces(b, fanOutFixture.team, benchUsers)
	}
	team, users := fanOutFixture.team, fanOutFixture.users
	startBenchWatcher(b)
	obs := observe(b)
	time.Sleep(time.Second) // let the watcher settle after the namespace events

	plainClient, err := dynamic.NewForConfig(productionConfig())
	if err != nil {
		b.Fatal(err)
	}
	var watcherTotal, plainTotal time.Duration
	b.ResetTimer()
	for range b.N {
		i := fanOutFixture.runs
		fanOutFixture.runs++
		// Alternate which goes first, and let the cluster settle in between, so neither
		// measurement runs in the other's wake.
		if i%2 == 0 {
			watcherTotal += fanOutByWatcher(b, obs, team, users, i)
			time.Sleep(2 * time.Second)
			plainTotal += fanOutByPlainClient(b, obs, plainClient, team, users, i)
		} else {
			plainTotal += fanOutByPlainClient(b, obs, plainClient, team, users, i)
			time.Sleep(2 * time.Second)
			watcherTotal += fanOutByWatcher(b, obs, team, users, i)
		}
		time.Sleep(2 * time.Second)
	}
	b.StopTimer()
	n := float64(b.N)
	// ns/op would count both fan-outs and the pauses; make it the watcher's time.
	b.ReportMetric(float64(watcherTotal.Nanoseconds())/n, "ns/op")
	b.ReportMetric(watcherTotal.Seconds()/n, "watcher-s/op")
	b.ReportMetric(plainTotal.Seconds()/n, "plain-s/op")
	b.ReportMetric(watcherTotal.Seconds()/plainTotal.Seconds(), "watcher/plain")
}

// fanOutByWatcher creates a team PodDefault and times until its copy is in every user namespace.
func fanOutByWatcher(b *testing.B, obs *observer, team string, users []string, i int) time.Duration {
	name := fmt.Sprintf("fanout-%d", i)
	keys := make([]string, len(users))
	for j, u := range users {
		keys[j] = u + "/" + name
	}
	start := time.Now()
	src := benchPodDefault(team, name, map[string]string{poddefaults.LabelSpace: poddefaults.SpaceTeam, poddefaults.LabelTeam: team}, nil)
	if _, err := env.Dynamic.Resource(poddefaults.GVR).Namespace(team).Create(b.Context(), src, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	return obs.wait(b, 60*time.Second, keys).Sub(start)
}

// fanOutByPlainClient creates the same objects as the watcher would, with the same concurrency
// and client limits. They carry no copy annotation, so the watcher leaves them alone (to it
// they are PodDefaults users made).
func fanOutByPlainClient(b *testing.B, obs *observer, client dynamic.Interface, team string, users []string, i int) time.Duration {
	name := fmt.Sprintf("plain-%d", i)
	keys := make([]string, len(users))
	for j, u := range users {
		keys[j] = u + "/" + name
	}
	start := time.Now()
	var g errgroup.Group
	g.SetLimit(watcher.DefaultOptions().Concurrency)
	for _, u := range users {
		g.Go(func() error {
			pd := benchPodDefault(u, name, map[string]string{"bench": "plain"}, map[string]string{"bench/source": team + "/" + name})
			_, err := client.Resource(poddefaults.GVR).Namespace(u).Create(b.Context(), pd, metav1.CreateOptions{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	return obs.wait(b, 60*time.Second, keys).Sub(start)
}

// BenchmarkNewUserReceives50TeamPodDefaults: a new user namespace of a team with 50 team
// PodDefaults receives all of them.
func BenchmarkNewUserReceives50TeamPodDefaults(b *testing.B) {
	const pds = 50
	team := benchTeam(b)
	for i := range pds {
		src := benchPodDefault(team, fmt.Sprintf("pd-%02d", i), map[string]string{poddefaults.LabelSpace: poddefaults.SpaceTeam, poddefaults.LabelTeam: team}, nil)
		if _, err := env.Dynamic.Resource(poddefaults.GVR).Namespace(team).Create(b.Context(), src, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	startBenchWatcher(b)
	obs := observe(b)
	time.Sleep(time.Second)

	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		ns := fmt.Sprintf("%s-new%d", team, i)
		keys := make([]string, pds)
		for j := range pds {
			keys[j] = fmt.Sprintf("%s/pd-%02d", ns, j)
		}
		start := time.Now()
		_, err := env.Clientset.CoreV1().Namespaces().Create(b.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
			Labels: map[string]string{poddefaults.LabelSpace: poddefaults.SpaceUser, poddefaults.LabelTeam: team}}}, metav1.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		total += obs.wait(b, 60*time.Second, keys).Sub(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(total.Seconds()/float64(b.N), "watcher-s/op")
}

func benchLogger() zerolog.Logger {
	if os.Getenv("BENCH_LOG") != "" {
		return zerolog.New(os.Stderr).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	}
	return zerolog.Nop()
}
