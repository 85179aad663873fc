// Package replications is the image-updater's side of the ImageReplications: an informer
// cache of them (for the whenReplicated policy and to skip existing ones without an API
// read) and a small bounded queue whose workers create the missing ones after the admission
// response. One destination is one resource, named mirror.ReplicationName(destination), so
// 500 Pods of one Deployment create one ImageReplication; the in-memory record of recent
// requests keeps them from even reaching the API server more than once.
package replications

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
	"github.com/orbit-workbench/orbit-controller/pkg/logging"
	"github.com/orbit-workbench/orbit-controller/pkg/metrics"
	"github.com/orbit-workbench/orbit-controller/pkg/mirror"
	"github.com/orbit-workbench/orbit-controller/pkg/orbitclient"
)

// Client is the part of orbitclient.ImageReplications the store writes with.
type Client interface {
	Create(ctx context.Context, ir *orbitv1.ImageReplication, opts metav1.CreateOptions) (*orbitv1.ImageReplication, error)
}

// Options tune the store.
type Options struct {
	// Namespace holds the ImageReplications (--namespace).
	Namespace string
	// FieldManager names the creates.
	FieldManager string
	// QueueSize bounds the requests waiting for a worker; a request that finds the queue full
	// is dropped and counted (the next Pod with that image asks again). 0 means 1024.
	QueueSize int
	// Workers create ImageReplications concurrently; 0 means 2.
	Workers int
	// Attempts bounds the creates of one request (AlreadyExists is success); 0 means 3.
	Attempts int
	// RetryDelay is the wait before the second attempt, doubled after each; 0 means 200ms.
	RetryDelay time.Duration
	// Remember is how long a created or queued destination is not requested again while the
	// informer has not yet shown its resource; 0 means one minute.
	Remember time.Duration
	// Timeout bounds one create; 0 means 5s.
	Timeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = 200 * time.Millisecond
	}
	if o.Remember <= 0 {
		o.Remember = time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

type request struct {
	name, source, destination string
}

// Store caches ImageReplications and creates missing ones. Complete and Request are safe
// for concurrent use and never call the API server.
type Store struct {
	client   Client
	informer cache.SharedIndexInformer
	opts     Options
	queue    chan request

	mu     sync.Mutex
	recent map[string]time.Time // name → when it was queued or created

	requested prometheus.Counter
	created   *prometheus.CounterVec
}

// Outcomes of a request (label values of replications_created_total).
const (
	outcomeCreated = "created"
	outcomeExists  = "exists"
	outcomeFailed  = "failed"
	outcomeDropped = "dropped"
)

// New builds a store over the ImageReplications of opts.Namespace and registers its metrics.
func New(orbit *orbitclient.Client, reg prometheus.Registerer, service string, opts Options) (*Store, error) {
	if orbit == nil {
		return nil, errors.New("replications: no orbit client")
	}
	irs := orbit.ImageReplications(opts.Namespace)
	return newStore(irs, irs.Informer(0), reg, service, opts)
}

func newStore(client Client, informer cache.SharedIndexInformer, reg prometheus.Registerer, service string, opts Options) (*Store, error) {
	if opts.Namespace == "" {
		return nil, errors.New("replications: no namespace")
	}
	opts.defaults()
	sub := metrics.Subsystem(service)
	s := &Store{
		client: client, informer: informer, opts: opts,
		queue:  make(chan request, opts.QueueSize),
		recent: map[string]time.Time{},
		requested: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "replications_requested_total",
			Help: "ImageReplications queued for creation (neither in the cache nor requested recently).",
		}),
		created: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "replications_created_total",
			Help: "Outcomes of queued ImageReplication creations (created, exists, failed, dropped).",
		}, []string{"outcome"}),
	}
	reg.MustRegister(s.requested, s.created)
	// A deleted ImageReplication may be asked for again at once (an operator retrying).
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if ir, ok := obj.(*orbitv1.ImageReplication); ok {
				s.forget(ir.Name)
			}
		},
	}); err != nil {
		return nil, fmt.Errorf("replications: watch deletions: %w", err)
	}
	return s, nil
}

// Ready is nil once the cache has synced (a health.Check for /readyz).
func (s *Store) Ready(context.Context) error {
	if !s.informer.HasSynced() {
		return fmt.Errorf("ImageReplication cache of %s not synced yet", s.opts.Namespace)
	}
	return nil
}

// Run fills the cache and creates requested ImageReplications until ctx ends.
func (s *Store) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.informer.RunWithContext(ctx) })
	for range s.opts.Workers {
		wg.Go(func() { s.work(ctx) })
	}
	wg.Go(func() { s.prune(ctx) })
	wg.Wait()
	return nil
}

func (s *Store) get(name string) *orbitv1.ImageReplication {
	obj, ok, err := s.informer.GetIndexer().GetByKey(s.opts.Namespace + "/" + name)
	if err != nil || !ok {
		return nil
	}
	ir, _ := obj.(*orbitv1.ImageReplication)
	return ir
}

// Complete reports whether destination's ImageReplication is Complete in the cache.
func (s *Store) Complete(destination string) bool {
	ir := s.get(mirror.ReplicationName(destination))
	return ir != nil && ir.Spec.Destination == destination && ir.Status.Phase == orbitv1.PhaseComplete
}

// Request queues the creation of destination's ImageReplication unless the cache has it or
// it was requested within Options.Remember. It never blocks: a full queue drops the request.
func (s *Store) Request(ctx context.Context, source, destination string) {
	name := mirror.ReplicationName(destination)
	if s.get(name) != nil {
		return
	}
	now := s.opts.Now()
	s.mu.Lock()
	if at, ok := s.recent[name]; ok && now.Sub(at) < s.opts.Remember {
		s.mu.Unlock()
		return
	}
	s.recent[name] = now
	s.mu.Unlock()
	select {
	case s.queue <- request{name: name, source: source, destination: destination}:
		s.requested.Inc()
	default:
		s.forget(name)
		s.created.WithLabelValues(outcomeDropped).Inc()
		zerolog.Ctx(ctx).Warn().Str(logging.KeyName, name).Str(logging.KeyImage, destination).
			Msg("ImageReplication queue full; request dropped, the next Pod asks again")
	}
}

func (s *Store) forget(name string) {
	s.mu.Lock()
	delete(s.recent, name)
	s.mu.Unlock()
}

func (s *Store) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-s.queue:
			outcome, err := s.create(ctx, r)
			s.created.WithLabelValues(outcome).Inc()
			log := zerolog.Ctx(ctx)
			switch {
			case err != nil:
				s.forget(r.name) // let the next Pod ask again
				if ctx.Err() == nil {
					log.Error().Err(err).Str(logging.KeyName, r.name).Str(logging.KeyImage, r.source).Msg("ImageReplication not created")
				}
			case outcome == outcomeCreated:
				log.Info().Str(logging.KeyNamespace, s.opts.Namespace).Str(logging.KeyName, r.name).
					Str(logging.KeyImage, r.source).Str("mirror", r.destination).Msg("ImageReplication created")
			}
		}
	}
}

// create creates r's ImageReplication, retrying with backoff; AlreadyExists is success.
func (s *Store) create(ctx context.Context, r request) (string, error) {
	ir := &orbitv1.ImageReplication{
		TypeMeta: metav1.TypeMeta{APIVersion: orbitv1.SchemeGroupVersion.String(), Kind: "ImageReplication"},
		ObjectMeta: metav1.ObjectMeta{
			Name: r.name, Namespace: s.opts.Namespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": s.opts.FieldManager},
		},
		Spec: orbitv1.ImageReplicationSpec{Source: r.source, Destination: r.destination},
	}
	delay := s.opts.RetryDelay
	var err error
	for attempt := 1; ; attempt++ {
		callCtx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		_, err = s.client.Create(callCtx, ir, metav1.CreateOptions{FieldManager: s.opts.FieldManager})
		cancel()
		switch {
		case err == nil:
			return outcomeCreated, nil
		case apierrors.IsAlreadyExists(err):
			return outcomeExists, nil
		case attempt >= s.opts.Attempts || ctx.Err() != nil || !retriable(err):
			return outcomeFailed, fmt.Errorf("create ImageReplication %s/%s for %s: %w", s.opts.Namespace, r.name, r.destination, err)
		}
		select {
		case <-ctx.Done():
			return outcomeFailed, fmt.Errorf("create ImageReplication %s/%s: %w", s.opts.Namespace, r.name, context.Cause(ctx))
		case <-time.After(delay):
		}
		delay *= 2
	}
}

// retriable: everything but what a retry cannot fix (invalid, forbidden, missing namespace).
func retriable(err error) bool {
	return !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) && !apierrors.IsBadRequest(err) &&
		!apierrors.IsNotFound(err) && !apierrors.IsMethodNotSupported(err)
}

// prune drops old entries of the recent-request record every Remember.
func (s *Store) prune(ctx context.Context) {
	t := time.NewTicker(s.opts.Remember)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := s.opts.Now()
			s.mu.Lock()
			for name, at := range s.recent {
				if now.Sub(at) >= s.opts.Remember {
					delete(s.recent, name)
				}
			}
			s.mu.Unlock()
		}
	}
}
