// Package replicator is the image-replicator's controller (SPEC §3.6): keyed by
// ImageReplication, it checks the mirror, starts and follows replication attempts at a backend,
// and records every step in the resource's status — Pending → Replicating → Complete | Failed,
// with the attempt count, the build id, a message and the transition time — so a restart
// resumes where the last process stopped and `kubectl get imagereplications` shows where
// every image stands.
package replicator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
	"github.com/orbit-workbench/orbit-controller/pkg/controller"
	"github.com/orbit-workbench/orbit-controller/pkg/logging"
	"github.com/orbit-workbench/orbit-controller/pkg/metrics"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/awserr"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/replicate"
)

// Client is the part of orbitclient.ImageReplications the controller writes with.
type Client interface {
	UpdateStatus(ctx context.Context, ir *orbitv1.ImageReplication, opts metav1.UpdateOptions) (*orbitv1.ImageReplication, error)
}

// StateRecorder receives the resourceVersion of every handled change (controller.StateWriter).
type StateRecorder interface {
	Record(resourceVersion string)
}

// Options tune the controller.
type Options struct {
	// FieldManager names the status writes.
	FieldManager string
	// MaxAttempts is how many attempts an image gets before it is Failed (MAX_REPLICATION_ATTEMPTS).
	MaxAttempts int32
	// Backoff spaces attempts.
	Backoff Backoff
	// PollInterval is how often a running attempt is polled.
	PollInterval time.Duration
	// ProgressDelay, for a backend whose Start returns when the attempt is over (copy), writes
	// the Replicating status only when Start has taken this long, so a quick copy costs one
	// status write instead of two; 0 writes it before every Start (CodeBuild, whose builds
	// must never be started twice). Either way a stopped process leaves a status from which
	// the next one counts attempts right.
	ProgressDelay time.Duration
	// StartTimeout bounds one Start (a whole copy for the copy backend).
	StartTimeout time.Duration
	// CallTimeout bounds a mirror check, a poll and a status write.
	CallTimeout time.Duration
	// Concurrency bounds the attempts being started at once (copies in flight for the copy
	// backend); 0 means Workers.
	Concurrency int
	// Workers reconcile concurrently. More workers than Concurrency keep every replication
	// slot busy while other workers wait on the API server (mirror checks, status writes).
	Workers int
	// Queue is the work queue's backoff for errors (throttling, API conflicts).
	Queue controller.QueueOptions
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultOptions: three attempts 30s, 1m, … apart (at most 15m), polls every 15s.
func DefaultOptions() Options {
	return Options{
		FieldManager: "image-replicator",
		MaxAttempts:  3,
		Backoff:      Backoff{Base: 30 * time.Second, Max: 15 * time.Minute},
		PollInterval: 15 * time.Second,
		StartTimeout: 30 * time.Minute,
		CallTimeout:  30 * time.Second,
		Workers:      4,
		Queue:        controller.QueueOptions{BaseDelay: time.Second, MaxDelay: 5 * time.Minute},
	}
}

// Controller replicates the ImageReplications of one informer.
type Controller struct {
	client   Client
	informer cache.SharedIndexInformer
	backend  replicate.Backend
	checker  replicate.Checker
	state    StateRecorder
	opts     Options
	queue    *controller.Queue[string]
	slots    chan struct{} // one per attempt being started

	mu sync.Mutex
	// complete: key → destination known to be in the mirror (no check needed again).
	complete map[string]string
	// written: key → resourceVersion of this process's last status write, so a reconcile knows
	// whether the cache already shows everything this process did.
	written map[string]string

	attempts *prometheus.CounterVec
	checks   *prometheus.CounterVec
}

// New builds a controller over informer (ImageReplications of one namespace). state may be nil.
func New(client Client, informer cache.SharedIndexInformer, backend replicate.Backend, checker replicate.Checker,
	state StateRecorder, reg prometheus.Registerer, service string, opts Options) (*Controller, error) {
	switch {
	case client == nil || informer == nil:
		return nil, errors.New("replicator: no client or informer")
	case backend == nil || checker == nil:
		return nil, errors.New("replicator: no backend or mirror check")
	case opts.MaxAttempts < 1:
		return nil, fmt.Errorf("replicator: max attempts %d must be at least 1", opts.MaxAttempts)
	case opts.Workers < 1 || opts.PollInterval <= 0 || opts.Backoff.Base <= 0 || opts.Backoff.Max < opts.Backoff.Base:
		return nil, errors.New("replicator: workers, poll interval and backoff must be positive")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = opts.Workers
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Minute
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 30 * time.Second
	}
	sub := metrics.Subsystem(service)
	c := &Controller{
		client: client, informer: informer, backend: backend, checker: checker, state: state, opts: opts,
		complete: map[string]string{}, written: map[string]string{},
		slots: make(chan struct{}, opts.Concurrency),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "attempts_total",
			Help: "Replication attempts by outcome (started, succeeded, failed).",
		}, []string{"outcome"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "mirror_checks_total",
			Help: "Mirror checks by result (present, absent, error).",
		}, []string{"result"}),
	}
	reg.MustRegister(c.attempts, c.checks, &phaseCollector{
		informer: informer,
		desc: prometheus.NewDesc(prometheus.BuildFQName(metrics.Namespace, sub, "replications"),
			"ImageReplications by phase.", []string{"phase"}, nil),
	})
	c.queue = controller.NewQueue("imagereplications", opts.Queue, controller.NewQueueMetrics(reg, service), c.reconcile)
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, obj any) { c.enqueue(obj) },
		DeleteFunc: c.enqueue,
	}); err != nil {
		return nil, fmt.Errorf("replicator: watch ImageReplications: %w", err)
	}
	return c, nil
}

func (c *Controller) enqueue(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err == nil {
		c.queue.Add(key)
	}
}

// Ready is nil once the cache has synced.
func (c *Controller) Ready(context.Context) error {
	if !c.informer.HasSynced() {
		return errors.New("ImageReplication cache not synced yet")
	}
	return nil
}

// Run fills the cache, then reconciles with Options.Workers until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { c.informer.RunWithContext(ctx) })
	if !cache.WaitForCacheSync(ctx.Done(), c.informer.HasSynced) {
		return fmt.Errorf("sync ImageReplication cache: %w", context.Cause(ctx))
	}
	zerolog.Ctx(ctx).Info().Int("workers", c.opts.Workers).Msg("replicating")
	c.queue.Run(ctx, c.opts.Workers)
	return nil
}

func (c *Controller) knownComplete(key, destination string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.complete[key] == destination
}

func (c *Controller) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.complete, key)
	delete(c.written, key)
}

// reconcile converges one ImageReplication.
func (c *Controller) reconcile(ctx context.Context, key string) error {
	obj, exists, err := c.informer.GetIndexer().GetByKey(key)
	if err != nil {
		return fmt.Errorf("read %s from the cache: %w", key, err)
	}
	if !exists {
		c.forget(key)
		return nil
	}
	ir, ok := obj.(*orbitv1.ImageReplication)
	if !ok {
		return fmt.Errorf("cache holds %T for %s", obj, key)
	}
	if c.knownComplete(key, ir.Spec.Destination) {
		return nil
	}
	log := zerolog.Ctx(ctx).With().Str(logging.KeyNamespace, ir.Namespace).Str(logging.KeyName, ir.Name).
		Str(logging.KeyImage, ir.Spec.Source).Logger()
	ctx = log.WithContext(ctx)

	has, err := c.check(ctx, ir.Spec.Destination)
	if err != nil {
		c.note(ctx, ir, "mirror check failed: "+reason(err))
		return fmt.Errorf("check mirror for %s: %w", ir.Spec.Destination, err)
	}
	if has {
		if ir.Status.Phase == orbitv1.PhaseComplete {
			c.markComplete(key, ir.Spec.Destination)
			return nil
		}
		st := ir.Status
		st.Phase, st.Message = orbitv1.PhaseComplete, "the mirror holds "+ir.Spec.Destination
		if _, err := c.write(ctx, ir, st); err != nil {
			return err
		}
		c.markComplete(key, ir.Spec.Destination)
		log.Info().Msg("image already in the mirror")
		return nil
	}

	act, wait := plan(ir.Status, c.opts.Now(), c.opts.MaxAttempts, c.opts.Backoff)
	log.Debug().Stringer("action", act).Str("phase", string(ir.Status.Phase)).Int32("attempt", ir.Status.Attempt).Msg("reconciling")
	switch act {
	case actNone:
		return nil
	case actWait:
		c.queue.AddAfter(key, wait)
		return nil
	case actGiveUp:
		st := ir.Status
		st.Phase = orbitv1.PhaseFailed
		st.Message = fmt.Sprintf("gave up after %d attempts: %s", st.Attempt, st.Message)
		_, err := c.write(ctx, ir, st)
		return err
	case actPoll:
		return c.poll(ctx, key, ir)
	case actResume:
		if !c.current(key, ir) {
			// The cache may not show this process's last write yet: a write based on it fails
			// with a conflict if so, and no attempt runs twice.
			st := ir.Status
			st.Message = fmt.Sprintf("attempt %d of %d resumed", st.Attempt, c.opts.MaxAttempts)
			if ir, err = c.write(ctx, ir, st); err != nil {
				return err
			}
			log.Info().Int32("attempt", st.Attempt).Msg("replication attempt resumed")
		}
		return c.start(ctx, key, ir, nil)
	case actStart, actRestart:
		st := ir.Status
		if act == actRestart {
			st.Attempt = 0
		}
		st.Phase, st.Attempt, st.BuildID, st.LastTransitionTime = orbitv1.PhaseReplicating, st.Attempt+1, "", nil
		st.Message = fmt.Sprintf("attempt %d of %d started", st.Attempt, c.opts.MaxAttempts)
		if act == actRestart {
			st.Message = "the mirror no longer holds the image; " + st.Message
		}
		c.attempts.WithLabelValues("started").Inc()
		log.Info().Int32("attempt", st.Attempt).Msg("replication attempt started")
		if c.opts.ProgressDelay > 0 {
			// A synchronous backend: the attempt is recorded with its outcome, and as
			// Replicating only if it runs long enough for anyone to see it.
			next := ir.DeepCopy()
			next.Status = st
			return c.start(ctx, key, next, ir)
		}
		if ir, err = c.write(ctx, ir, st); err != nil {
			return err
		}
		return c.start(ctx, key, ir, nil)
	}
	return fmt.Errorf("unknown action %v", act)
}

// withStatus is a copy of ir with status st.
func withStatus(ir *orbitv1.ImageReplication, st orbitv1.ImageReplicationStatus) *orbitv1.ImageReplication {
	out := ir.DeepCopy()
	out.Status = st
	return out
}

// current reports whether the cached ir is exactly what this process last wrote.
func (c *Controller) current(key string, ir *orbitv1.ImageReplication) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	rv, ok := c.written[key]
	return ok && rv == ir.ResourceVersion
}

func (c *Controller) markComplete(key, destination string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.complete[key] = destination
}

func (c *Controller) check(ctx context.Context, destination string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.CallTimeout)
	defer cancel()
	has, err := c.checker.Has(ctx, destination)
	switch {
	case err != nil:
		c.checks.WithLabelValues("error").Inc()
	case has:
		c.checks.WithLabelValues("present").Inc()
	default:
		c.checks.WithLabelValues("absent").Inc()
	}
	return has, err
}

// start runs Start for the attempt ir's status counts and records what it returns. stored,
// when not nil, is the object as stored, whose status does not show the attempt yet (see
// Options.ProgressDelay): ir's status is then written only if Start outlasts the delay.
func (c *Controller) start(ctx context.Context, key string, ir, stored *orbitv1.ImageReplication) error {
	startCtx, cancel := context.WithTimeout(ctx, c.opts.StartTimeout)
	var progress *time.Timer
	progressed := make(chan *orbitv1.ImageReplication, 1)
	if stored != nil {
		progress = time.AfterFunc(c.opts.ProgressDelay, func() {
			out, err := c.write(ctx, stored, ir.Status)
			if err != nil && ctx.Err() == nil {
				zerolog.Ctx(ctx).Debug().Err(err).Msg("progress not written")
			}
			progressed <- out
		})
	}
	st, err := c.startBackend(startCtx, ir)
	cancel()
	if stored != nil {
		if progress.Stop() {
			ir = withStatus(stored, ir.Status) // never written: finish writes over the stored object
		} else if out := <-progressed; out != nil {
			ir = out
		} else {
			ir = withStatus(stored, ir.Status)
		}
	}
	if err != nil {
		switch {
		case ctx.Err() != nil:
			// Stopping: the status says Replicating, so the next process resumes this attempt.
			return fmt.Errorf("replicate %s: %w", ir.Spec.Source, err)
		case replicate.IsRetryable(err):
			// Throttled or at a concurrency limit: the attempt has not started and is not
			// counted again; the queue retries with backoff.
			c.note(ctx, ir, fmt.Sprintf("attempt %d of %d waiting: %s", ir.Status.Attempt, c.opts.MaxAttempts, reason(err)))
			return fmt.Errorf("start replication of %s: %w", ir.Spec.Source, err)
		}
		// The backend refused the request (bad destination, access denied): a failed attempt.
		st = replicate.Status{Done: true, Message: err.Error()}
	}
	if !st.Done {
		next := ir.Status
		next.BuildID = st.ID
		next.Message = fmt.Sprintf("attempt %d of %d: %s", next.Attempt, c.opts.MaxAttempts, st.Message)
		if _, err := c.write(ctx, ir, next); err != nil {
			return err
		}
		c.queue.AddAfter(key, c.opts.PollInterval)
		return nil
	}
	return c.finish(ctx, key, ir, st)
}

// startBackend calls Start once a replication slot is free.
func (c *Controller) startBackend(ctx context.Context, ir *orbitv1.ImageReplication) (replicate.Status, error) {
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return replicate.Status{}, fmt.Errorf("wait for a replication slot: %w", context.Cause(ctx))
	}
	defer func() { <-c.slots }()
	return c.backend.Start(ctx, replicate.Request{Source: ir.Spec.Source, Destination: ir.Spec.Destination})
}

// poll asks the backend about the attempt running under status.buildId.
func (c *Controller) poll(ctx context.Context, key string, ir *orbitv1.ImageReplication) error {
	pollCtx, cancel := context.WithTimeout(ctx, c.opts.CallTimeout)
	st, err := c.backend.Poll(pollCtx, ir.Status.BuildID)
	cancel()
	if err != nil {
		return fmt.Errorf("poll replication %s of %s: %w", ir.Status.BuildID, ir.Spec.Source, err)
	}
	if st.ID == "" {
		st.ID = ir.Status.BuildID
	}
	if !st.Done {
		c.note(ctx, ir, fmt.Sprintf("attempt %d of %d: %s", ir.Status.Attempt, c.opts.MaxAttempts, st.Message))
		c.queue.AddAfter(key, c.opts.PollInterval)
		return nil
	}
	return c.finish(ctx, key, ir, st)
}

// finish records the end of an attempt: Complete, Failed after the last attempt, else
// Pending until the backoff has passed.
func (c *Controller) finish(ctx context.Context, key string, ir *orbitv1.ImageReplication, st replicate.Status) error {
	log := zerolog.Ctx(ctx)
	next := ir.Status
	next.BuildID = st.ID
	if st.Succeeded {
		c.attempts.WithLabelValues("succeeded").Inc()
		next.Phase, next.Message = orbitv1.PhaseComplete, st.Message
		if _, err := c.write(ctx, ir, next); err != nil {
			return err
		}
		c.markComplete(key, ir.Spec.Destination)
		log.Info().Int32("attempt", next.Attempt).Str("destination", ir.Spec.Destination).Msg("image replicated")
		return nil
	}
	c.attempts.WithLabelValues("failed").Inc()
	if next.Attempt >= c.opts.MaxAttempts {
		next.Phase = orbitv1.PhaseFailed
		next.Message = fmt.Sprintf("attempt %d of %d failed, giving up: %s", next.Attempt, c.opts.MaxAttempts, st.Message)
		if _, err := c.write(ctx, ir, next); err != nil {
			return err
		}
		log.Error().Int32("attempt", next.Attempt).Str("reason", st.Message).Msg("image replication failed")
		return nil
	}
	wait := c.opts.Backoff.After(next.Attempt)
	next.Phase = orbitv1.PhasePending
	next.Message = fmt.Sprintf("attempt %d of %d failed, next in %s: %s", next.Attempt, c.opts.MaxAttempts, wait, st.Message)
	if _, err := c.write(ctx, ir, next); err != nil {
		return err
	}
	log.Warn().Int32("attempt", next.Attempt).Str("reason", st.Message).Dur("retryIn", wait).Msg("replication attempt failed")
	c.queue.AddAfter(key, wait)
	return nil
}

// write replaces ir's status with st (optimistic concurrency on ir's resourceVersion),
// stamping lastTransitionTime when the phase changes, and returns the stored object.
func (c *Controller) write(ctx context.Context, ir *orbitv1.ImageReplication, st orbitv1.ImageReplicationStatus) (*orbitv1.ImageReplication, error) {
	if st.Phase == "" {
		st.Phase = orbitv1.PhasePending
	}
	if st.Phase != ir.Status.Phase || st.LastTransitionTime == nil {
		now := metav1.NewTime(c.opts.Now())
		st.LastTransitionTime = &now
	}
	next := ir.DeepCopy()
	next.Status = st
	ctx, cancel := context.WithTimeout(ctx, c.opts.CallTimeout)
	defer cancel()
	out, err := c.client.UpdateStatus(ctx, next, metav1.UpdateOptions{FieldManager: c.opts.FieldManager})
	if err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			// The cache is behind, or the resource went away: the next reconcile reads again.
			return nil, fmt.Errorf("write status of %s/%s (will re-read): %w", ir.Namespace, ir.Name, err)
		}
		return nil, fmt.Errorf("write status of %s/%s: %w", ir.Namespace, ir.Name, err)
	}
	key := out.Namespace + "/" + out.Name
	c.mu.Lock()
	c.written[key] = out.ResourceVersion
	c.mu.Unlock()
	if c.state != nil {
		c.state.Record(out.ResourceVersion)
	}
	return out, nil
}

// note writes msg into the status message, keeping the phase, when it says something new.
// It is best effort: a failure is logged, the caller's outcome stands.
func (c *Controller) note(ctx context.Context, ir *orbitv1.ImageReplication, msg string) {
	if ir.Status.Message == msg {
		return
	}
	st := ir.Status
	st.Message = msg
	if _, err := c.write(ctx, ir, st); err != nil && ctx.Err() == nil {
		zerolog.Ctx(ctx).Debug().Err(err).Msg("status message not written")
	}
}

// reason is a short, stable description of err for a status message: the AWS error code
// when there is one (its text carries a request id that changes on every call).
func reason(err error) string {
	if code := awserr.Code(err); code != "" {
		return code
	}
	return err.Error()
}

// phaseCollector reports the cached ImageReplications by phase at scrape time.
type phaseCollector struct {
	informer cache.SharedIndexInformer
	desc     *prometheus.Desc
}

func (p *phaseCollector) Describe(ch chan<- *prometheus.Desc) { ch <- p.desc }

func (p *phaseCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[orbitv1.ReplicationPhase]int{
		orbitv1.PhasePending: 0, orbitv1.PhaseReplicating: 0, orbitv1.PhaseComplete: 0, orbitv1.PhaseFailed: 0,
	}
	for _, obj := range p.informer.GetStore().List() {
		if ir, ok := obj.(*orbitv1.ImageReplication); ok {
			phase := ir.Status.Phase
			if phase == "" {
				phase = orbitv1.PhasePending
			}
			counts[phase]++
		}
	}
	for phase, n := range counts {
		ch <- prometheus.MustNewConstMetric(p.desc, prometheus.GaugeValue, float64(n), string(phase))
	}
}
