package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderOptions configure leader election on a Lease in the controller's namespace.
type LeaderOptions struct {
	Enabled       bool
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// DefaultLeaderOptions are client-go's recommended timings scaled down for a quick handover:
// a stopped leader releases its Lease, and a crashed one is replaced within LeaseDuration.
func DefaultLeaderOptions() LeaderOptions {
	return LeaderOptions{LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
}

// BindFlags binds --leader-elect and its timings.
func (o *LeaderOptions) BindFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.Enabled, "leader-elect", o.Enabled, "run as one of several replicas; only the holder of the Lease works")
	fs.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", o.LeaseDuration, "how long a Lease is held without renewal")
	fs.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", o.RenewDeadline, "how long the leader tries to renew before giving up")
	fs.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", o.RetryPeriod, "how often candidates try to acquire the Lease")
}

// Validate checks the timings.
func (o LeaderOptions) Validate() error {
	if !o.Enabled {
		return nil
	}
	if o.RetryPeriod <= 0 || o.RenewDeadline <= o.RetryPeriod || o.LeaseDuration <= o.RenewDeadline {
		return errors.New("--leader-elect-*: want lease-duration > renew-deadline > retry-period > 0")
	}
	return nil
}

// ErrLostLease is returned when a leader stops holding its Lease: the process should exit and
// be restarted as a candidate, since its caches may have acted on stale leadership.
var ErrLostLease = errors.New("lost leader election lease")

// RunLeader runs work while holding the Lease `name` in namespace, or directly when leader
// election is off. work's context is cancelled when leadership is lost or ctx ends.
func RunLeader(ctx context.Context, opts LeaderOptions, client kubernetes.Interface, namespace, name, identity string, work func(ctx context.Context)) error {
	if !opts.Enabled {
		work(ctx)
		return nil
	}
	if identity == "" {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("leader election identity: %w", err)
		}
		identity = fmt.Sprintf("%s_%d", host, time.Now().UnixNano())
	}
	log := zerolog.Ctx(ctx).With().Str("lease", namespace+"/"+name).Str("identity", identity).Logger()
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: namespace, Name: name},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
	}
	lost := make(chan struct{})
	var led atomic.Bool
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   opts.LeaseDuration,
		RenewDeadline:   opts.RenewDeadline,
		RetryPeriod:     opts.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				led.Store(true)
				log.Info().Msg("became leader")
				work(log.WithContext(ctx))
			},
			OnStoppedLeading: func() {
				if led.Load() && ctx.Err() == nil {
					close(lost)
				}
			},
			OnNewLeader: func(current string) {
				if current != identity {
					log.Info().Str("leader", current).Msg("another replica leads; standing by")
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election %s/%s: %w", namespace, name, err)
	}
	elector.Run(ctx)
	select {
	case <-lost:
		return ErrLostLease
	default:
		return nil
	}
}
