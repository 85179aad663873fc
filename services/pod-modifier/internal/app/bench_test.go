package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/orbit-workbench/orbit-controller/pkg/certs"
	"github.com/orbit-workbench/orbit-controller/pkg/orbitclient"
	"github.com/orbit-workbench/orbit-controller/pkg/webhook"
	"github.com/orbit-workbench/orbit-controller/services/pod-modifier/internal/benchdata"
	"github.com/orbit-workbench/orbit-controller/services/pod-modifier/internal/podsetting"
)

// BenchmarkPodCreateLatency measures what users feel: Pod CREATE latency on the real API
// server through the pod-modifier, through a do-nothing webhook (the floor any webhook pays for
// the API server's round trip) and through none, interleaved in one run at a steady rate.
//
// A fourth kind goes through a fixed-patch webhook: it answers at once with the very patch the
// pod-modifier computes for these Pods, precomputed. The API server's own work on a mutation
// (applying the patch, decoding and defaulting the result, running its built-in mutating
// plugins a second time because a webhook changed the object, storing a larger Pod) is in it
// too, so modifier/fixed-patch is what the pod-modifier's design itself costs.
func BenchmarkPodCreateLatency(b *testing.B) {
	ctx := b.Context()
	state := benchNamespace(b, "bench-system", nil)
	team := benchNamespace(b, "lake", map[string]string{"orbit/space": "team"})
	setLabels(b, team, map[string]string{"orbit/team": team.Name})
	user := benchNamespace(b, "lake-alice", map[string]string{"orbit/space": "user", "orbit/user": "alice", "orbit-bench": "modifier"})
	setLabels(b, user, map[string]string{"orbit/team": team.Name})
	noop := benchNamespace(b, "noop", map[string]string{"orbit-bench": "noop"})
	none := benchNamespace(b, "none", nil)
	fixed := benchNamespace(b, "lake-bob", map[string]string{"orbit-bench": "fixed", "orbit/user": "alice"})
	setLabels(b, fixed, map[string]string{"orbit/team": team.Name})

	orbit, err := orbitclient.New(env.Config)
	if err != nil {
		b.Fatal(err)
	}
	for _, ps := range benchdata.TeamPodSettings(team.Name) {
		ps.Namespace = team.Name
		if _, err := orbit.PodSettings(team.Name).Create(ctx, ps, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	startService(b, state.Name, map[string]string{"orbit-bench": "modifier"})
	startStaticWebhook(b, "noop", webhook.Allowed())
	startStaticWebhook(b, "fixed", fixedPatch(b, fixed, team.Name))

	namespaces := []string{user.Name, noop.Name, none.Name, fixed.Name}
	lat := map[string][]time.Duration{}
	var mu sync.Mutex
	const rate, perKind = 30, 300 // 300 a kind: a p99 of fewer samples is mostly noise
	b.ResetTimer()
	for b.Loop() {
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / rate)
		for i := range perKind * len(namespaces) {
			<-tick.C
			ns := namespaces[i%len(namespaces)]
			p := benchdata.NotebookPod(ns)
			p.Name = fmt.Sprintf("nb-%d-%d", time.Now().UnixNano(), i)
			wg.Go(func() {
				start := time.Now()
				_, err := env.Clientset.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
				took := time.Since(start)
				if err != nil {
					b.Errorf("create in %s: %v", ns, err)
					return
				}
				mu.Lock()
				lat[ns] = append(lat[ns], took)
				mu.Unlock()
			})
		}
		tick.Stop()
		wg.Wait()
	}
	b.StopTimer()
	// Both mutating kinds must really have mutated, the others not.
	for ns, want := range map[string]bool{user.Name: true, fixed.Name: true, noop.Name: false, none.Name: false} {
		pods, err := env.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil || len(pods.Items) == 0 {
			b.Fatalf("list pods in %s: %v", ns, err)
		}
		if got := pods.Items[0].Annotations[podsetting.AppliedAnnotation] != ""; got != want {
			b.Fatalf("pod in %s mutated: %v, want %v", ns, got, want)
		}
	}
	pct := func(ns string, p int) time.Duration {
		l := lat[ns]
		slices.Sort(l)
		return l[(len(l)-1)*p/100]
	}
	for _, k := range []struct{ ns, name string }{{user.Name, "modifier"}, {noop.Name, "noop"}, {none.Name, "none"}, {fixed.Name, "fixed"}} {
		b.ReportMetric(float64(pct(k.ns, 50).Microseconds())/1000, k.name+"-p50-ms")
		b.ReportMetric(float64(pct(k.ns, 99).Microseconds())/1000, k.name+"-p99-ms")
	}
	b.ReportMetric(float64(pct(user.Name, 50))/float64(pct(noop.Name, 50)), "p50-ratio-vs-noop")
	b.ReportMetric(float64(pct(user.Name, 99))/float64(pct(noop.Name, 99)), "p99-ratio-vs-noop")
	b.ReportMetric(float64(pct(user.Name, 50))/float64(pct(fixed.Name, 50)), "p50-ratio-vs-fixed")
	b.ReportMetric(float64(pct(user.Name, 99))/float64(pct(fixed.Name, 99)), "p99-ratio-vs-fixed")
}

// fixedPatch is the pod-modifier's answer for a notebook Pod in ns, computed once with the
// same pure function the service uses.
func fixedPatch(b *testing.B, ns *corev1.Namespace, team string) *admissionv1.AdmissionResponse {
	b.Helper()
	pod := benchdata.NotebookPod(ns.Name)
	raw, err := json.Marshal(pod)
	if err != nil {
		b.Fatal(err)
	}
	cur, err := env.Clientset.CoreV1().Namespaces().Get(b.Context(), ns.Name, metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	res := podsetting.NewSet(benchdata.TeamPodSettings(team)).ApplyInPlace(pod, cur)
	ops, err := podsetting.Patch(raw, res.Pod)
	if err != nil || len(ops) == 0 {
		b.Fatalf("patch %v: %v", ops, err)
	}
	resp, err := webhook.PatchOpsResponse(ops, nil)
	if err != nil {
		b.Fatal(err)
	}
	return resp
}

func benchNamespace(b *testing.B, prefix string, labels map[string]string) *corev1.Namespace {
	b.Helper()
	return env.Namespace(b, prefix, labels)
}

func setLabels(b *testing.B, ns *corev1.Namespace, labels map[string]string) {
	b.Helper()
	cur, err := env.Clientset.CoreV1().Namespaces().Get(b.Context(), ns.Name, metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for k, v := range labels {
		cur.Labels[k] = v
	}
	if _, err := env.Clientset.CoreV1().Namespaces().Update(b.Context(), cur, metav1.UpdateOptions{}); err != nil {
		b.Fatal(err)
	}
}

// startStaticWebhook serves a webhook that answers every Pod at once with a copy of resp,
// registered like ours for namespaces labelled orbit-bench=kind.
func startStaticWebhook(b *testing.B, kind string, resp *admissionv1.AdmissionResponse) {
	b.Helper()
	ca, err := certs.NewCA(kind, time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	kp, err := certs.IssueServing(ca, []string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	cert, err := kp.TLSCertificate()
	if err != nil {
		b.Fatal(err)
	}
	r := webhook.NewRouter(zerolog.Nop(), nil)
	r.Admit("/static", func(context.Context, *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
		out := *resp
		return &out, nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go func() { _ = webhook.Serve(ctx, ln, r, webhook.NewStaticCert(cert), time.Second) }()
	registerWebhook(b, "bench-"+kind, "https://"+ln.Addr().String()+"/static", ca.CertPEM, map[string]string{"orbit-bench": kind})
	time.Sleep(time.Second) // let the API server's webhook cache see both configurations
}
