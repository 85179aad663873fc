package controller

import (
	"fmt"

	"github.com/spf13/pflag"
)

// WatcherOptions are the flags every watcher adds to the common ones (SPEC §6).
type WatcherOptions struct {
	Workers int
	Leader  LeaderOptions
}

// DefaultWatcherOptions: a few workers, leader election off for a local run (on in the chart).
func DefaultWatcherOptions() WatcherOptions {
	return WatcherOptions{Workers: 4, Leader: DefaultLeaderOptions()}
}

// BindFlags binds --workers and the leader-election flags.
func (o *WatcherOptions) BindFlags(fs *pflag.FlagSet) {
	fs.IntVar(&o.Workers, "workers", o.Workers, "reconcile workers")
	o.Leader.BindFlags(fs)
}

// Validate checks the options.
func (o WatcherOptions) Validate() error {
	if o.Workers < 1 || o.Workers > 256 {
		return fmt.Errorf("--workers: %d is out of range 1-256", o.Workers)
	}
	return o.Leader.Validate()
}
