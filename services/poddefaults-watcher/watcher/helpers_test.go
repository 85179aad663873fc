package watcher_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/orbit-workbench/orbit-controller/pkg/controller"
	"github.com/orbit-workbench/orbit-controller/pkg/testenv"

	"github.com/orbit-workbench/orbit-controller/services/poddefaults-watcher/internal/poddefaults"
	"github.com/orbit-workbench/orbit-controller/services/poddefaults-watcher/watcher"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{}, &env) }

func suffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// team creates a team namespace named after its team and returns the team's name.
func team(t testing.TB, prefix string) string {
	t.Helper()
	name := prefix + "-" + suffix()
	env.CreateNamespace(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{poddefaults.LabelSpace: poddefaults.SpaceTeam, poddefaults.LabelTeam: name}}})
	return name
}

// userNamespace creates a user namespace of team, named <team>-<user>.
func userNamespace(t testing.TB, team, user string) string {
	t.Helper()
	name := team + "-" + user
	env.CreateNamespace(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels:      map[string]string{poddefaults.LabelSpace: poddefaults.SpaceUser, poddefaults.LabelTeam: team, "orbit/user": user},
		Annotations: map[string]string{"owner": user + "@example.com"}}})
	return name
}

type running struct {
	w    *watcher.Watcher
	stop func()
}

func options() watcher.Options {
	o := watcher.DefaultOptions()
	o.Namespace = ""
	o.Workers = 2
	o.Queue = controller.QueueOptions{BaseDelay: 20 * time.Millisecond, MaxDelay: 2 * time.Second}
	return o
}

// start runs a watcher until the test ends (or stop is called).
func start(t testing.TB, opts watcher.Options, log zerolog.Logger) *running {
	t.Helper()
	if opts.Namespace == "" {
		opts.Namespace = env.Namespace(t, "ctl", nil).Name
	}
	w, err := watcher.New(env.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	if opts.Identity != "" {
		log = log.With().Str("identity", opts.Identity).Logger()
	}
	ctx = log.WithContext(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("watcher %s stopped with %v", opts.Identity, err)
		}
	}
	t.Cleanup(stop)
	testenv.Eventually(t, 60*time.Second, func(ctx context.Context) (bool, string) {
		if err := w.Ready(ctx); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	return &running{w: w, stop: stop}
}

func testLog(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
}

func pdClient(namespace string) interface {
	Create(context.Context, *unstructured.Unstructured, metav1.CreateOptions, ...string) (*unstructured.Unstructured, error)
	Get(context.Context, string, metav1.GetOptions, ...string) (*unstructured.Unstructured, error)
	Delete(context.Context, string, metav1.DeleteOptions, ...string) error
	Patch(context.Context, string, types.PatchType, []byte, metav1.PatchOptions, ...string) (*unstructured.Unstructured, error)
	List(context.Context, metav1.ListOptions) (*unstructured.UnstructuredList, error)
} {
	return env.Dynamic.Resource(poddefaults.GVR).Namespace(namespace)
}

// teamPodDefault creates a team PodDefault in the team namespace with the given spec.
func teamPodDefault(t testing.TB, team, name string, spec map[string]any) {
	t.Helper()
	pd := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	pd.SetGroupVersionKind(poddefaults.GVK)
	pd.SetName(name)
	pd.SetLabels(map[string]string{poddefaults.LabelSpace: poddefaults.SpaceTeam, poddefaults.LabelTeam: team})
	if _, err := pdClient(team).Create(t.Context(), pd, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create team poddefault %s/%s: %v", team, name, err)
	}
}

func spec(desc string) map[string]any {
	return map[string]any{"desc": desc, "selector": map[string]any{"matchLabels": map[string]any{"orbit/" + desc: ""}}}
}

func patchPodDefault(t testing.TB, namespace, name, patch string) {
	t.Helper()
	if _, err := pdClient(namespace).Patch(t.Context(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("patch poddefault %s/%s: %v", namespace, name, err)
	}
}

func patchNamespace(t testing.TB, name, patch string) {
	t.Helper()
	if _, err := env.Clientset.CoreV1().Namespaces().Patch(t.Context(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("patch namespace %s: %v", name, err)
	}
}

// state renders the PodDefaults of the given namespaces as sorted lines
// "ns/name desc=<desc> team=<orbit/team> source=<annotation>", the form tests compare.
func state(ctx context.Context, namespaces ...string) ([]string, error) {
	var out []string
	for _, ns := range namespaces {
		list, err := pdClient(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, pd := range list.Items {
			if pd.GetDeletionTimestamp() != nil {
				continue
			}
			d, _, _ := unstructured.NestedString(pd.Object, "spec", "desc")
			out = append(out, fmt.Sprintf("%s/%s desc=%s space=%s team=%s source=%s", ns, pd.GetName(), d,
				pd.GetLabels()[poddefaults.LabelSpace], pd.GetLabels()[poddefaults.LabelTeam], pd.GetAnnotations()[poddefaults.AnnotationSource]))
		}
	}
	sort.Strings(out)
	return out, nil
}

// copyLine is the state line of a copy of team PodDefault team/name in namespace ns.
func copyLine(ns, team, name, desc string) string {
	return fmt.Sprintf("%s/%s desc=%s space=user team=%s source=%s/%s", ns, name, desc, team, team, name)
}

func teamLine(team, name, desc string) string {
	return fmt.Sprintf("%s/%s desc=%s space=team team=%s source=", team, name, desc, team)
}

// waitState waits until the PodDefaults in namespaces are exactly want.
func waitState(t testing.TB, timeout time.Duration, want []string, namespaces ...string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	testenv.Eventually(t, timeout, func(ctx context.Context) (bool, string) {
		got, err := state(ctx, namespaces...)
		if err != nil {
			return false, err.Error()
		}
		if slices.Equal(got, want) {
			return true, ""
		}
		return false, diff(got, want)
	})
}

func diff(got, want []string) string {
	g := map[string]bool{}
	for _, s := range got {
		g[s] = true
	}
	w := map[string]bool{}
	for _, s := range want {
		w[s] = true
	}
	var missing, extra []string
	for s := range maps.Keys(w) {
		if !g[s] {
			missing = append(missing, s)
		}
	}
	for s := range maps.Keys(g) {
		if !w[s] {
			extra = append(extra, s)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	return fmt.Sprintf("missing %d:\n  %s\nextra %d:\n  %s", len(missing), strings.Join(missing, "\n  "), len(extra), strings.Join(extra, "\n  "))
}
