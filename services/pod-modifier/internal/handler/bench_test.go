package handler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/orbit-workbench/orbit-controller/pkg/certs"
	"github.com/orbit-workbench/orbit-controller/pkg/loadtest"
	"github.com/orbit-workbench/orbit-controller/pkg/webhook"
	"github.com/orbit-workbench/orbit-controller/services/pod-modifier/internal/benchdata"
	"github.com/orbit-workbench/orbit-controller/services/pod-modifier/internal/handler"
	"github.com/orbit-workbench/orbit-controller/services/pod-modifier/internal/podsetting"
)

func benchRouter(b *testing.B) (*webhook.Router, []byte) {
	b.Helper()
	src := memory{
		namespaces: map[string]*corev1.Namespace{"lake-alice": {ObjectMeta: metav1.ObjectMeta{
			Name: "lake-alice", Labels: map[string]string{"orbit/team": "lake", "orbit/user": "alice", "orbit/space": "user"},
			Annotations: map[string]string{"owner": "alice@example.com"},
		}}},
		sets: map[string]*podsetting.Set{"lake": podsetting.NewSet(benchdata.TeamPodSettings("lake"))},
	}
	r := webhook.NewRouter(zerolog.Nop(), webhook.NewMetrics(prometheus.NewRegistry(), "bench"))
	r.Admit(handler.Path, handler.New(src, prometheus.NewRegistry(), 0).Admit)
	raw, err := json.Marshal(benchdata.NotebookPod("lake-alice"))
	if err != nil {
		b.Fatal(err)
	}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "bench", Operation: admissionv1.Create, Namespace: "lake-alice",
			Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Object: runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	return r, body
}

// BenchmarkHandlerInProcess: decode, match 50 PodSettings (5 apply), mutate, diff, encode —
// the whole request through the router, no network.
func BenchmarkHandlerInProcess(b *testing.B) {
	r, body := benchRouter(b)
	lat := make([]time.Duration, 0, b.N)
	patched := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, handler.Path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		start := time.Now()
		r.ServeHTTP(rec, req)
		lat = append(lat, time.Since(start))
		if rec.Code != 200 {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if bytes.Contains(rec.Body.Bytes(), []byte(`"patch"`)) {
			patched++
		}
	}
	b.StopTimer()
	if patched != len(lat) {
		b.Fatalf("only %d of %d responses carried a patch", patched, len(lat))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkHandlerTLS2000: the same request over TLS with keep-alive at a steady 2,000
// requests/s for 5 s (open loop, 16 connections), sent by a separate process as the API server
// would be; p50/p99 in µs and the error count.
func BenchmarkHandlerTLS2000(b *testing.B) {
	r, body := benchRouter(b)
	ca, err := certs.NewCA("bench", time.Hour, time.Now())
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = webhook.Serve(ctx, ln, r, webhook.NewStaticCert(cert), time.Second) }()
	load := loadtest.HTTPLoad{
		URL: "https://" + ln.Addr().String() + handler.Path, CAPEM: ca.CertPEM, Body: body,
		Rate: 2000, Duration: 5 * time.Second, Warmup: time.Second, Concurrency: 16,
		MustContain: []byte(`"patch"`),
	}
	var res loadtest.Result
	for b.Loop() {
		if res, err = loadtest.RunHTTPInChild(ctx, load); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(res.Percentile(50).Microseconds()), "p50-µs")
	b.ReportMetric(float64(res.Percentile(99).Microseconds()), "p99-µs")
	b.ReportMetric(float64(res.ServicePercentile(50).Microseconds()), "sent-p50-µs")
	b.ReportMetric(float64(res.ServicePercentile(99).Microseconds()), "sent-p99-µs")
	b.ReportMetric(float64(res.LagPercentile(99).Microseconds()), "send-lag-p99-µs")
	b.ReportMetric(float64(res.Errors), "errors")
	b.ReportMetric(float64(res.Requests)/res.Elapsed.Seconds(), "req/s")
	if res.Errors > 0 {
		b.Errorf("%d errors, first: %v", res.Errors, res.FirstErr)
	}
}

// TestMain lets BenchmarkHandlerTLS2000 re-run this binary as its load generator.
func TestMain(m *testing.M) {
	loadtest.MaybeRunChild()
	os.Exit(m.Run())
}
