// Package controller is the watcher plumbing: a rate-limited work queue drained by N workers
// with retries and backoff, leader election on a Lease, and the debounced writer of the
// orbit-controller-state ConfigMap.
package controller

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/workqueue"

	"github.com/orbit-workbench/orbit-controller/pkg/metrics"
)

// Reconcile converges one key. Returning an error requeues the key with backoff.
type Reconcile[K comparable] func(ctx context.Context, key K) error

// QueueOptions tune retries.
type QueueOptions struct {
	// BaseDelay and MaxDelay bound the per-key exponential backoff.
	BaseDelay, MaxDelay time.Duration
}

// DefaultQueueOptions retry quickly at first (a conflict usually clears at once) and back off
// to a minute for a key that keeps failing (an unreachable chart repository).
func DefaultQueueOptions() QueueOptions {
	return QueueOptions{BaseDelay: 50 * time.Millisecond, MaxDelay: time.Minute}
}

// QueueMetrics are shared by the queues of one service.
type QueueMetrics struct {
	reconciles *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	depth      *prometheus.GaugeVec
	retries    *prometheus.CounterVec
}

// NewQueueMetrics registers orbit_<service>_reconcile_* and queue depth on reg.
func NewQueueMetrics(reg prometheus.Registerer, service string) *QueueMetrics {
	sub := metrics.Subsystem(service)
	m := &QueueMetrics{
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "reconcile_total",
			Help: "Reconciles by queue and outcome (success, error).",
		}, []string{"queue", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "reconcile_duration_seconds",
			Help: "Time to reconcile one key.", Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
		}, []string{"queue"}),
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "queue_depth",
			Help: "Keys waiting in the work queue.",
		}, []string{"queue"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "queue_retries_total",
			Help: "Keys requeued with backoff after an error.",
		}, []string{"queue"}),
	}
	reg.MustRegister(m.reconciles, m.duration, m.depth, m.retries)
	return m
}

// Queue is a typed rate-limited work queue with its workers.
type Queue[K comparable] struct {
	name      string
	q         workqueue.TypedRateLimitingInterface[K]
	reconcile Reconcile[K]
	metrics   *QueueMetrics
	log       func(K) string
}

// NewQueue builds a queue; metrics may be nil.
func NewQueue[K comparable](name string, opts QueueOptions, m *QueueMetrics, reconcile Reconcile[K]) *Queue[K] {
	limiter := workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[K](opts.BaseDelay, opts.MaxDelay),
		// The overall bucket only guards against a hot loop; the API client's QPS is the real bound.
		&workqueue.TypedBucketRateLimiter[K]{Limiter: rate.NewLimiter(rate.Limit(500), 1000)},
	)
	q := workqueue.NewTypedRateLimitingQueueWithConfig(limiter, workqueue.TypedRateLimitingQueueConfig[K]{Name: name})
	return &Queue[K]{name: name, q: q, reconcile: reconcile, metrics: m, log: func(k K) string { return fmt.Sprint(k) }}
}

// Add enqueues a key; duplicates waiting in the queue collapse into one.
func (q *Queue[K]) Add(key K) {
	q.q.Add(key)
	q.updateDepth()
}

// AddAfter enqueues a key after a delay (periodic resync of one key).
func (q *Queue[K]) AddAfter(key K, d time.Duration) { q.q.AddAfter(key, d) }

// Len is the number of keys waiting.
func (q *Queue[K]) Len() int { return q.q.Len() }

func (q *Queue[K]) updateDepth() {
	if q.metrics != nil {
		q.metrics.depth.WithLabelValues(q.name).Set(float64(q.q.Len()))
	}
}

// Run starts workers and blocks until ctx ends and they have finished their current key.
func (q *Queue[K]) Run(ctx context.Context, workers int) {
	if workers < 1 {
		workers = 1
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for q.next(ctx) {
			}
		})
	}
	<-ctx.Done()
	q.q.ShutDown()
	wg.Wait()
}

func (q *Queue[K]) next(ctx context.Context) bool {
	key, shutdown := q.q.Get()
	if shutdown {
		return false
	}
	defer q.q.Done(key)
	q.updateDepth()
	start := time.Now()
	err := q.call(ctx, key)
	if q.metrics != nil {
		q.metrics.duration.WithLabelValues(q.name).Observe(time.Since(start).Seconds())
	}
	if err != nil {
		if ctx.Err() != nil {
			return true
		}
		if q.metrics != nil {
			q.metrics.reconciles.WithLabelValues(q.name, "error").Inc()
			q.metrics.retries.WithLabelValues(q.name).Inc()
		}
		// A conflict is optimistic concurrency doing its job: retry, but do not alarm anyone.
		ev := zerolog.Ctx(ctx).Warn()
		if apierrors.IsConflict(err) {
			ev = zerolog.Ctx(ctx).Debug()
		}
		ev.Err(err).Str("queue", q.name).Str("key", q.log(key)).
			Int("retries", q.q.NumRequeues(key)).Msg("reconcile failed; retrying with backoff")
		q.q.AddRateLimited(key)
		return true
	}
	if q.metrics != nil {
		q.metrics.reconciles.WithLabelValues(q.name, "success").Inc()
	}
	q.q.Forget(key)
	return true
}

// call runs the reconcile, turning a panic into an error so one bad object cannot stop a worker.
func (q *Queue[K]) call(ctx context.Context, key K) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("reconcile panic: %v\n%s", p, debug.Stack())
		}
	}()
	return q.reconcile(ctx, key)
}

// Reconciles exposes the reconcile counter (tests and dashboards' sanity checks).
func (m *QueueMetrics) Reconciles() *prometheus.CounterVec { return m.reconciles }
