package replications

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
	"github.com/orbit-workbench/orbit-controller/pkg/mirror"
)

// fakeClient records creates; fail, when set, answers each create.
type fakeClient struct {
	mu      sync.Mutex
	creates []*orbitv1.ImageReplication
	fail    func(n int) error
	block   chan struct{}
}

func (f *fakeClient) Create(ctx context.Context, ir *orbitv1.ImageReplication, _ metav1.CreateOptions) (*orbitv1.ImageReplication, error) {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates = append(f.creates, ir)
	if f.fail != nil {
		if err := f.fail(len(f.creates)); err != nil {
			return nil, err
		}
	}
	return ir, nil
}

func (f *fakeClient) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.creates)
}

// informer is a real shared informer over a fixed list and a fake watch.
func informer(items ...orbitv1.ImageReplication) (cache.SharedIndexInformer, *watch.FakeWatcher) {
	w := watch.NewFake()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
			return &orbitv1.ImageReplicationList{ListMeta: metav1.ListMeta{ResourceVersion: "1"}, Items: items}, nil
		},
		WatchFuncWithContext: func(context.Context, metav1.ListOptions) (watch.Interface, error) { return w, nil },
	}
	return cache.NewSharedIndexInformer(listOnly{lw}, &orbitv1.ImageReplication{}, 0, cache.Indexers{}), w
}

// listOnly makes the reflector list then watch: the fake watch sends no initial events.
type listOnly struct{ *cache.ListWatch }

func (listOnly) IsWatchListSemanticsUnSupported() bool { return true }

func start(t *testing.T, s *Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(5 * time.Second)
	for s.Ready(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("cache never synced")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const dst = "123456789012.dkr.ecr.us-west-2.amazonaws.com/orbit-dev/nginx:1"

func TestRequestsOfOneDestinationCreateOnce(t *testing.T) {
	client := &fakeClient{}
	inf, _ := informer()
	reg := prometheus.NewRegistry()
	s, err := newStore(client, inf, reg, "image-updater", Options{Namespace: "orbit-system", FieldManager: "image-updater"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Ready(t.Context()) == nil {
		t.Fatal("ready before the cache synced")
	}
	start(t, s)
	var wg sync.WaitGroup
	for range 500 {
		wg.Go(func() { s.Request(t.Context(), "nginx:1", dst) })
	}
	wg.Wait()
	eventually(t, func() bool { return client.count() == 1 }, "one create")
	time.Sleep(50 * time.Millisecond)
	if n := client.count(); n != 1 {
		t.Fatalf("%d creates for 500 requests of one destination", n)
	}
	ir := client.creates[0]
	if ir.Name != mirror.ReplicationName(dst) || ir.Namespace != "orbit-system" || ir.Spec.Source != "nginx:1" || ir.Spec.Destination != dst {
		t.Errorf("created %s/%s %+v", ir.Namespace, ir.Name, ir.Spec)
	}
	if got := testutil.ToFloat64(s.requested); got != 1 {
		t.Errorf("replications_requested_total = %v, want 1", got)
	}
	eventually(t, func() bool { return testutil.ToFloat64(s.created.WithLabelValues(outcomeCreated)) == 1 }, "created metric")
}

func TestExistingInCacheIsNotRequested(t *testing.T) {
	client := &fakeClient{}
	existing := orbitv1.ImageReplication{
		ObjectMeta: metav1.ObjectMeta{Name: mirror.ReplicationName(dst), Namespace: "orbit-system", ResourceVersion: "1"},
		Spec:       orbitv1.ImageReplicationSpec{Source: "nginx:1", Destination: dst},
		Status:     orbitv1.ImageReplicationStatus{Phase: orbitv1.PhaseComplete},
	}
	inf, w := informer(existing)
	s, err := newStore(client, inf, prometheus.NewRegistry(), "image-updater", Options{Namespace: "orbit-system"})
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	if !s.Complete(dst) {
		t.Error("Complete is false for a Complete ImageReplication in the cache")
	}
	if s.Complete(dst + "0") {
		t.Error("Complete is true for another destination")
	}
	s.Request(t.Context(), "nginx:1", dst)
	time.Sleep(50 * time.Millisecond)
	if n := client.count(); n != 0 {
		t.Fatalf("%d creates for a destination the cache holds", n)
	}
	// Deleted: the next request creates it again.
	w.Delete(&existing)
	eventually(t, func() bool { return s.get(existing.Name) == nil }, "deletion in the cache")
	s.Request(t.Context(), "nginx:1", dst)
	eventually(t, func() bool { return client.count() == 1 }, "create after deletion")
}

func TestCreateOutcomes(t *testing.T) {
	gr := schema.GroupResource{Group: "orbit.aws", Resource: "imagereplications"}
	tests := []struct {
		name    string
		fail    func(n int) error
		creates int
		outcome string
		again   bool // a second request creates again
	}{
		{name: "already exists is success", fail: func(int) error { return apierrors.NewAlreadyExists(gr, "x") }, creates: 1, outcome: outcomeExists},
		{name: "transient error retried", fail: func(n int) error {
			if n < 3 {
				return apierrors.NewServiceUnavailable("busy")
			}
			return nil
		}, creates: 3, outcome: outcomeCreated},
		{name: "permanent error not retried, asked again later", fail: func(int) error {
			return apierrors.NewForbidden(gr, "x", errors.New("rbac"))
		}, creates: 1, outcome: outcomeFailed, again: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := &fakeClient{fail: tt.fail}
			inf, _ := informer()
			s, err := newStore(client, inf, prometheus.NewRegistry(), "image-updater", Options{Namespace: "orbit-system", RetryDelay: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			start(t, s)
			s.Request(t.Context(), "nginx:1", dst)
			eventually(t, func() bool { return testutil.ToFloat64(s.created.WithLabelValues(tt.outcome)) == 1 }, tt.outcome)
			if n := client.count(); n != tt.creates {
				t.Errorf("%d creates, want %d", n, tt.creates)
			}
			s.Request(t.Context(), "nginx:1", dst)
			want := tt.creates
			if tt.again {
				want++
				eventually(t, func() bool { return client.count() == want }, "second create")
			}
			time.Sleep(20 * time.Millisecond)
			if n := client.count(); n != want {
				t.Errorf("after a second request %d creates, want %d", n, want)
			}
		})
	}
}

func TestFullQueueDropsWithoutBlocking(t *testing.T) {
	client := &fakeClient{block: make(chan struct{})}
	inf, _ := informer()
	s, err := newStore(client, inf, prometheus.NewRegistry(), "image-updater", Options{Namespace: "orbit-system", QueueSize: 1, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	s.Request(t.Context(), "a", dst+"1") // taken by the worker, which blocks
	eventually(t, func() bool { return len(s.queue) == 0 }, "worker to take the first request")
	s.Request(t.Context(), "b", dst+"2") // waits in the queue
	done := make(chan struct{})
	go func() { s.Request(t.Context(), "c", dst+"3"); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Request blocked on a full queue")
	}
	if got := testutil.ToFloat64(s.created.WithLabelValues(outcomeDropped)); got != 1 {
		t.Errorf("dropped = %v, want 1", got)
	}
	close(client.block)
	eventually(t, func() bool { return client.count() == 2 }, "the two queued creates")
	s.Request(t.Context(), "c", dst+"3") // dropped before, so asked again
	eventually(t, func() bool { return client.count() == 3 }, "the dropped request asked again")
}
