package controller_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/orbit-workbench/orbit-controller/pkg/controller"
	"github.com/orbit-workbench/orbit-controller/pkg/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{NoControllerManager: true}, &env) }

func TestStateWriterPatchesConfigMapDebounced(t *testing.T) {
	ns := env.Namespace(t, "state", nil)
	ctx, cancel := context.WithCancel(t.Context())
	w := controller.NewStateWriter(env.Clientset, ns.Name, controller.StateKeyPodSettingsWatcher, "test")
	other := controller.NewStateWriter(env.Clientset, ns.Name, controller.StateKeyPodDefaultsWatcher, "test")
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	go other.Run(ctx)

	// 100 records within a few hundred milliseconds: one or two writes, and the last value wins.
	for i := range 100 {
		w.Record("rv-" + string(rune('a'+i%26)))
		time.Sleep(3 * time.Millisecond)
	}
	w.Record("rv-final")
	other.Record("other-1")
	testenv.Eventually(t, 5*time.Second, func(ctx context.Context) (bool, string) {
		cm, err := env.Clientset.CoreV1().ConfigMaps(ns.Name).Get(ctx, controller.StateConfigMap, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		s, err := controller.ReadState(cm, controller.StateKeyPodSettingsWatcher)
		if err != nil {
			return false, err.Error()
		}
		o, _ := controller.ReadState(cm, controller.StateKeyPodDefaultsWatcher)
		return s.LastResourceVersion == "rv-final" && o.LastResourceVersion == "other-1",
			"state is " + s.LastResourceVersion + " / " + o.LastResourceVersion
	})
	if n := w.Writes(); n < 1 || n > 3 {
		t.Errorf("101 records in ~0.4s made %d writes; want 1-3 (at most one per second)", n)
	}
	// A value recorded just before stop is flushed on the way out.
	w.Record("rv-at-stop")
	cancel()
	<-done
	cm, err := env.Clientset.CoreV1().ConfigMaps(ns.Name).Get(t.Context(), controller.StateConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := controller.ReadState(cm, controller.StateKeyPodSettingsWatcher); s.LastResourceVersion != "rv-at-stop" {
		t.Errorf("after stop the key holds %q, want rv-at-stop", s.LastResourceVersion)
	}
}

func TestLeaderElectionHandsOverWhenLeaderStops(t *testing.T) {
	ns := env.Namespace(t, "lease", nil)
	opts := controller.LeaderOptions{Enabled: true, LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond}
	var mu sync.Mutex
	leading := map[string]bool{}
	run := func(ctx context.Context, id string) chan error {
		errc := make(chan error, 1)
		go func() {
			errc <- controller.RunLeader(ctx, opts, env.Clientset, ns.Name, "test-lease", id, func(ctx context.Context) {
				mu.Lock()
				leading[id] = true
				mu.Unlock()
				<-ctx.Done()
				mu.Lock()
				leading[id] = false
				mu.Unlock()
			})
		}()
		return errc
	}
	ctxA, stopA := context.WithCancel(t.Context())
	errA := run(ctxA, "a")
	testenv.Eventually(t, 10*time.Second, func(context.Context) (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return leading["a"], "a never led"
	})
	ctxB, stopB := context.WithCancel(t.Context())
	defer stopB()
	errB := run(ctxB, "b")
	time.Sleep(time.Second)
	mu.Lock()
	if leading["b"] {
		t.Fatal("b leads while a holds the lease")
	}
	mu.Unlock()

	stopped := time.Now()
	stopA()
	if err := <-errA; err != nil {
		t.Fatalf("a stopped with %v", err)
	}
	testenv.Eventually(t, opts.LeaseDuration+2*time.Second, func(context.Context) (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return leading["b"], "b did not take over"
	})
	// a released its lease on stop, so b needs only a retry period, not a lease duration.
	if took := time.Since(stopped); took > opts.LeaseDuration {
		t.Errorf("handover took %s, more than the lease duration %s", took, opts.LeaseDuration)
	}
	stopB()
	if err := <-errB; err != nil {
		t.Fatalf("b stopped with %v", err)
	}
}

func TestQueueRetriesWithBackoffAndCountsOutcomes(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := controller.NewQueueMetrics(reg, "test")
	var calls atomic.Int32
	done := make(chan struct{})
	q := controller.NewQueue("things", controller.QueueOptions{BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}, m,
		func(ctx context.Context, key string) error {
			if key == "panics" {
				panic("boom")
			}
			if calls.Add(1) < 3 {
				return errors.New("transient")
			}
			close(done)
			return nil
		})
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() { q.Run(ctx, 2); close(stopped) }()
	q.Add("panics")
	q.Add("k")
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("key never succeeded")
	}
	cancel()
	<-stopped
	if got := testutil.ToFloat64(m.Reconciles().WithLabelValues("things", "success")); got != 1 {
		t.Errorf("success count %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.Reconciles().WithLabelValues("things", "error")); got < 3 {
		t.Errorf("error count %v, want ≥3 (two transient failures and a panic)", got)
	}
}
