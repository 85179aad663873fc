package app_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/orbit-workbench/orbit-controller/pkg/certs"
	"github.com/orbit-workbench/orbit-controller/pkg/cli"
	"github.com/orbit-workbench/orbit-controller/pkg/health"
	"github.com/orbit-workbench/orbit-controller/pkg/loadtest"
	"github.com/orbit-workbench/orbit-controller/pkg/metrics"
	"github.com/orbit-workbench/orbit-controller/pkg/testenv"
	"github.com/orbit-workbench/orbit-controller/services/image-updater/internal/app"
	"github.com/orbit-workbench/orbit-controller/services/image-updater/internal/handler"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	loadtest.MaybeRunChild()                       // BenchmarkWebhookLatencyTLS's load generator
	if os.Getenv("ORBIT_NO_CONTROL_PLANE") != "" { // fuzzing runs only the unit targets
		os.Exit(m.Run())
	}
	testenv.Main(m, testenv.Options{NoControllerManager: true}, &env)
}

const mirrorHost = "123456789012.dkr.ecr.us-west-2.amazonaws.com"

// updater is an image-updater running in-process against the test control plane.
type updater struct {
	addr string
	ca   certs.KeyPair
	rt   *cli.Runtime
}

// testLog writes the service's log lines to the test log when ORBIT_TEST_LOG is set; a
// benchmark formats them as in production (JSON, info) and throws them away.
func testLog(t testing.TB) zerolog.Logger {
	if os.Getenv("ORBIT_TEST_LOG") == "" {
		if _, ok := t.(*testing.B); ok {
			return zerolog.New(io.Discard).Level(zerolog.InfoLevel).With().Timestamp().Logger()
		}
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
}

// startUpdater runs app.Run with opts (files-mode certificate from a fresh test CA, loopback
// listener) in namespace until the test ends, and waits until it is ready.
func startUpdater(t testing.TB, opts app.Options, namespace string, cfg *rest.Config) *updater {
	t.Helper()
	ca, err := certs.NewCA("image-updater-test", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	serving, err := certs.IssueServing(ca, []string{"127.0.0.1", "localhost"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	opts.Certs.Mode = certs.ModeFiles
	opts.Certs.CertFile, opts.Certs.KeyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(opts.Certs.CertFile, serving.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(opts.Certs.KeyFile, serving.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := opts.Validate(); err != nil {
		t.Fatalf("options: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.Listener = ln

	common := cli.DefaultCommon()
	common.Namespace = namespace
	common.ShutdownTimeout = 5 * time.Second
	log := testLog(t)
	rt := &cli.Runtime{
		Common: common, Log: log, Registry: metrics.NewRegistry(), Health: health.NewChecks(),
		RESTConfig: func() (*rest.Config, error) { return rest.CopyConfig(cfg), nil },
		Stdout:     io.Discard,
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	ctx = log.WithContext(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, rt, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("image-updater stopped with %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := rt.Health.Ready(ctx)
		if err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("image-updater stopped before it was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("image-updater not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &updater{addr: ln.Addr().String(), ca: ca, rt: rt}
}

// register points a URL-based MutatingWebhookConfiguration at u for Pods of namespaces
// labelled selector, and waits until the API server calls it: a dry-run Pod of probeImage in
// probeNamespace comes back with another image.
func (u *updater) register(t *testing.T, selector map[string]string, probeNamespace, probeImage string) {
	t.Helper()
	url := "https://" + u.addr + handler.Path
	cfg := testenv.PodWebhook("", url, u.ca.CertPEM, selector)
	cfg.GenerateName = "image-updater-test-"
	cfg.Webhooks[0].Name = "image-replication.orbit.aws"
	sideEffects := admissionregistrationv1.SideEffectClassNoneOnDryRun
	cfg.Webhooks[0].SideEffects = &sideEffects
	cfg.Webhooks[0].ReinvocationPolicy = nil
	env.RegisterWebhook(t, cfg)
	// The configuration takes a moment to reach the API server's webhook cache; a dry run
	// probes it without side effects.
	testenv.Eventually(t, 15*time.Second, func(ctx context.Context) (bool, string) {
		p, err := env.Clientset.CoreV1().Pods(probeNamespace).Create(ctx, newPod("probe", probeImage), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, err.Error()
		}
		return p.Spec.Containers[0].Image != probeImage, "webhook not called yet"
	})
}

func newPod(name, image string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
	}
}

// metric reads a counter from the service's registry; labels are name, value pairs.
func (u *updater) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	v, err := metrics.Sum(u.rt.Registry, name, labels...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
