package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/rs/zerolog"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
	"github.com/orbit-workbench/orbit-controller/pkg/cli"
	"github.com/orbit-workbench/orbit-controller/pkg/controller"
	"github.com/orbit-workbench/orbit-controller/pkg/health"
	"github.com/orbit-workbench/orbit-controller/pkg/metrics"
	"github.com/orbit-workbench/orbit-controller/pkg/orbitclient"
	"github.com/orbit-workbench/orbit-controller/pkg/testenv"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/app"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	if os.Getenv("ORBIT_NO_CONTROL_PLANE") != "" { // fuzzing runs only the unit targets
		os.Exit(m.Run())
	}
	testenv.Main(m, testenv.Options{NoControllerManager: true}, &env)
}

func testLog(t testing.TB) zerolog.Logger {
	if os.Getenv("ORBIT_TEST_LOG") == "" {
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
}

func runtimeFor(t testing.TB, namespace string) *cli.Runtime {
	common := cli.DefaultCommon()
	common.Namespace = namespace
	return &cli.Runtime{
		Common: common, Log: testLog(t), Registry: metrics.NewRegistry(), Health: health.NewChecks(),
		RESTConfig: func() (*rest.Config, error) { return rest.CopyConfig(env.Config), nil },
		Stdout:     io.Discard,
	}
}

// replicator is an image-replicator running in-process against the test control plane.
type replicator struct {
	rt     *cli.Runtime
	cancel context.CancelFunc
	done   chan error
}

// startReplicator runs app.Run with opts in namespace and waits until it is ready; it is
// stopped when the test ends, or earlier by stop.
func startReplicator(t testing.TB, opts app.Options, namespace string) *replicator {
	t.Helper()
	if err := opts.Validate(); err != nil {
		t.Fatalf("options: %v", err)
	}
	rt := runtimeFor(t, namespace)
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	ctx = rt.Log.WithContext(ctx)
	r := &replicator{rt: rt, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- app.Run(ctx, rt, opts) }()
	t.Cleanup(func() { r.stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := rt.Health.Ready(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("image-replicator not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r
}

// stop stops the replicator and waits for it (idempotent).
func (r *replicator) stop(t testing.TB) {
	t.Helper()
	if r.done == nil {
		return
	}
	r.cancel()
	if err := <-r.done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("image-replicator stopped with %v", err)
	}
	r.done = nil
}

// copyOptions: the copy backend, quick retries, two attempts.
func copyOptions() app.Options {
	opts := app.DefaultOptions()
	opts.Backend = app.BackendCopy
	opts.MaxAttempts = 2
	opts.Watcher.Workers = 4
	opts.PollInterval = 50 * time.Millisecond
	opts.RetryBackoff, opts.RetryBackoffMax = 50*time.Millisecond, 200*time.Millisecond
	opts.Queue = &controller.QueueOptions{BaseDelay: 10 * time.Millisecond, MaxDelay: 200 * time.Millisecond}
	return opts
}

// newRegistry starts an OCI registry on loopback, its handler wrapped by wrap (may be nil),
// and returns its host:port.
func newRegistry(t testing.TB, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// pushRandom pushes a random image of layers layers (4 KiB each, or size) to ref and returns
// its digest.
func pushRandom(t testing.TB, ref string, layers int, size ...int64) v1.Hash {
	t.Helper()
	layerSize := int64(4096)
	if len(size) > 0 {
		layerSize = size[0]
	}
	img, err := random.Image(layerSize, int64(layers))
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func headDigest(ctx context.Context, ref string) (v1.Hash, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return v1.Hash{}, err
	}
	d, err := remote.Head(r, remote.WithContext(ctx))
	if err != nil {
		return v1.Hash{}, err
	}
	return d.Digest, nil
}

func replications(t testing.TB, namespace string) *orbitclient.ImageReplications {
	t.Helper()
	c, err := orbitclient.New(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	return c.ImageReplications(namespace)
}

func createReplication(t testing.TB, irs *orbitclient.ImageReplications, name, source, dst string) {
	t.Helper()
	_, err := irs.Create(t.Context(), &orbitv1.ImageReplication{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       orbitv1.ImageReplicationSpec{Source: source, Destination: dst},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create ImageReplication %s: %v", name, err)
	}
}

// waitFor polls the ImageReplication until cond holds and returns it.
func waitFor(t *testing.T, irs *orbitclient.ImageReplications, name string, timeout time.Duration, cond func(orbitv1.ImageReplicationStatus) bool) *orbitv1.ImageReplication {
	t.Helper()
	var got *orbitv1.ImageReplication
	testenv.Eventually(t, timeout, func(ctx context.Context) (bool, string) {
		ir, err := irs.Get(ctx, name)
		if err != nil {
			return false, err.Error()
		}
		got = ir
		return cond(ir.Status), fmt.Sprintf("status %+v", ir.Status)
	})
	return got
}

func phase(p orbitv1.ReplicationPhase) func(orbitv1.ImageReplicationStatus) bool {
	return func(st orbitv1.ImageReplicationStatus) bool { return st.Phase == p }
}

// metric sums the samples of a counter of the replicator's registry whose labels include the
// given name, value pairs.
func (r *replicator) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	v, err := metrics.Sum(r.rt.Registry, name, labels...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
