package controller

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Runner is the life cycle every watcher shares: its informers run and stay warm on every
// replica (so a standby is ready and takes over at once), while the work — the queue's workers
// and the state writer — runs only while this replica holds the Lease.
type Runner struct {
	Informers []cache.SharedIndexInformer
	Leader    LeaderOptions
	Client    kubernetes.Interface
	// Namespace and Name place the Lease; Identity names this replica ("" = host and time).
	Namespace, Name, Identity string

	synced  atomic.Bool
	leading atomic.Bool
}

// Ready reports whether the informer caches have synced (the /readyz check).
func (r *Runner) Ready(context.Context) error {
	if !r.synced.Load() {
		return errors.New("informer caches not synced")
	}
	return nil
}

// Leading reports whether this replica holds the Lease and does the work.
func (r *Runner) Leading() bool { return r.leading.Load() }

// Run starts the informers, waits for their first sync, then runs lead while holding the Lease
// with the state writer beside it. It returns nil when ctx ends and ErrLostLease when
// leadership is lost.
func (r *Runner) Run(ctx context.Context, state *StateWriter, lead func(ctx context.Context)) error {
	var informers sync.WaitGroup
	defer informers.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	synced := make([]cache.InformerSynced, 0, len(r.Informers))
	for _, inf := range r.Informers {
		informers.Go(func() { inf.RunWithContext(ctx) })
		synced = append(synced, inf.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil // ctx ended first
	}
	r.synced.Store(true)
	zerolog.Ctx(ctx).Info().Msg("informer caches synced")

	return RunLeader(ctx, r.Leader, r.Client, r.Namespace, r.Name, r.Identity, func(ctx context.Context) {
		r.leading.Store(true)
		defer r.leading.Store(false)
		var writer sync.WaitGroup
		if state != nil {
			writer.Go(func() { state.Run(ctx) })
		}
		lead(ctx)
		writer.Wait()
	})
}
