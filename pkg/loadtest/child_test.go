package loadtest_test

import (
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orbit-workbench/orbit-controller/pkg/loadtest"
)

func TestMain(m *testing.M) {
	loadtest.MaybeRunChild()
	os.Exit(m.Run())
}

// The child process sends exactly the load asked for, over TLS to a server it trusts through
// the given CA, and reports failed and unexpected answers as errors.
func TestRunHTTPInChild(t *testing.T) {
	var n, bad atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if string(body) != `{"ping":1}` || r.Header.Get("Content-Type") != "application/json" {
			bad.Add(1)
		}
		switch n.Add(1) % 10 {
		case 0:
			http.Error(w, "every tenth fails", http.StatusInternalServerError)
		case 5:
			_, _ = w.Write([]byte(`{"other":true}`))
		default:
			_, _ = w.Write([]byte(`{"patch":"x"}`))
		}
	}))
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	res, err := loadtest.RunHTTPInChild(t.Context(), loadtest.HTTPLoad{
		URL: srv.URL, CAPEM: ca, Body: []byte(`{"ping":1}`),
		Rate: 500, Duration: 200 * time.Millisecond, Warmup: 20 * time.Millisecond, Concurrency: 4,
		MustContain: []byte(`"patch"`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Load(); got != 110 {
		t.Errorf("server saw %d requests, want 10 warm-up + 100", got)
	}
	if bad.Load() != 0 {
		t.Errorf("%d requests without the body or content type asked for", bad.Load())
	}
	// Requests 11..110: ten end in 0 (500) and ten in 5 (no "patch").
	if res.Requests != 100 || res.Errors != 20 || len(res.Latencies) != 80 || len(res.ServiceLatencies) != 80 {
		t.Fatalf("requests %d errors %d latencies %d/%d", res.Requests, res.Errors, len(res.Latencies), len(res.ServiceLatencies))
	}
	if res.FirstErr == nil || !(strings.Contains(res.FirstErr.Error(), "status 500") || strings.Contains(res.FirstErr.Error(), "lacks")) {
		t.Errorf("first error %v", res.FirstErr)
	}
	if res.Percentile(99) <= 0 || res.Elapsed < 190*time.Millisecond {
		t.Errorf("p99 %s elapsed %s", res.Percentile(99), res.Elapsed)
	}
}

func TestRunHTTPInChildReportsAnUntrustedServer(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	res, err := loadtest.RunHTTPInChild(t.Context(), loadtest.HTTPLoad{
		URL: srv.URL, Body: []byte(`{}`), Rate: 100, Duration: 50 * time.Millisecond, Concurrency: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != res.Requests || res.Requests != 5 || res.FirstErr == nil || !strings.Contains(res.FirstErr.Error(), "certificate") {
		t.Errorf("requests %d errors %d first %v: want every request refused for its certificate", res.Requests, res.Errors, res.FirstErr)
	}
}
