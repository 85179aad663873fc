package app_test

import (
	"context"
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
)

// BenchmarkPodCreateLatency measures what users feel: Pod CREATE latency on the real API
// server through the pod-modifier, through a do-nothing webhook (the floor any webhook pays for
// the API server's round trip) and through none, interleaved in one run at a steady rate.
func BenchmarkPodCreateLatency(b *testing.B) {
	ctx := b.Context()
	state := benchNamespace(b, "bench-system", nil)
	team := benchNamespace(b, "lake", map[string]string{"orbit/space": "team"})
	setLabels(b, team, map[string]string{"orbit/team": team.Name})
	user := benchNamespace(b, "lake-alice", map[string]string{"orbit/space": "user", "orbit/user": "alice", "orbit-bench": "modifier"})
	setLabels(b, user, map[string]string{"orbit/team": team.Name})
	noop := benchNamespace(b, "noop", map[string]string{"orbit-bench": "noop"})
	none := benchNamespace(b, "none", nil)

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
	startNoopWebhook(b, noop.Name)

	namespaces := []string{user.Name, noop.Name, none.Name}
	lat := map[string][]time.Duration{}
	var mu sync.Mutex
	const rate, perKind = 30, 150
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
	pct := func(ns string, p int) time.Duration {
		l := lat[ns]
		slices.Sort(l)
		return l[(len(l)-1)*p/100]
	}
	for _, k := range []struct{ ns, name string }{{user.Name, "modifier"}, {noop.Name, "noop"}, {none.Name, "none"}} {
		b.ReportMetric(float64(pct(k.ns, 50).Microseconds())/1000, k.name+"-p50-ms")
		b.ReportMetric(float64(pct(k.ns, 99).Microseconds())/1000, k.name+"-p99-ms")
	}
	b.ReportMetric(float64(pct(user.Name, 50))/float64(pct(noop.Name, 50)), "p50-ratio-vs-noop")
	b.ReportMetric(float64(pct(user.Name, 99))/float64(pct(noop.Name, 99)), "p99-ratio-vs-noop")
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

// startNoopWebhook serves a webhook that allows every Pod at once, registered like ours.
func startNoopWebhook(b *testing.B, namespace string) {
	b.Helper()
	ca, err := certs.NewCA("noop", time.Hour, time.Now())
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
	r.Admit("/noop", func(context.Context, *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
		return webhook.Allowed(), nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go func() { _ = webhook.Serve(ctx, ln, r, webhook.NewStaticCert(cert), time.Second) }()
	registerWebhook(b, "noop-"+namespace, "https://"+ln.Addr().String()+"/noop", ca.CertPEM, map[string]string{"orbit-bench": "noop"})
	time.Sleep(time.Second) // let the API server's webhook cache see both configurations
}
