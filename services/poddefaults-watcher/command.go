package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/orbit-workbench/orbit-controller/pkg/cli"
	"github.com/orbit-workbench/orbit-controller/pkg/config"
	"github.com/orbit-workbench/orbit-controller/pkg/controller"

	"github.com/orbit-workbench/orbit-controller/services/poddefaults-watcher/watcher"
)

type options struct {
	controller.WatcherOptions
	ResyncPeriod     time.Duration
	WriteConcurrency int
}

func (o *options) BindFlags(fs *pflag.FlagSet) {
	o.WatcherOptions.BindFlags(fs)
	fs.DurationVar(&o.ResyncPeriod, "resync-period", o.ResyncPeriod,
		"how often every team is reconciled again even without a change (repairs drift)")
	fs.IntVar(&o.WriteConcurrency, "write-concurrency", o.WriteConcurrency,
		"API writes in flight within one team's reconcile (the fan-out to its user namespaces)")
}

func (o *options) Validate() error {
	if o.ResyncPeriod < 0 {
		return fmt.Errorf("--resync-period: must not be negative, got %s", o.ResyncPeriod)
	}
	if o.WriteConcurrency < 1 || o.WriteConcurrency > 1024 {
		return fmt.Errorf("--write-concurrency: %d is out of range 1-1024", o.WriteConcurrency)
	}
	return o.WatcherOptions.Validate()
}

func command(version string) cli.Command {
	def := watcher.DefaultOptions()
	opts := &options{WatcherOptions: controller.DefaultWatcherOptions(), ResyncPeriod: def.ResyncPeriod, WriteConcurrency: def.Concurrency}
	return cli.Command{
		Name:    watcher.Name,
		Version: version,
		Short:   "every team PodDefault copied into every user namespace of the team",
		Options: opts,
		Env:     []config.Binding{{Env: "POD_DEFAULTS_WATCHER_WORKERS", Flag: "workers"}},
		Run: func(ctx context.Context, rt *cli.Runtime) error {
			cfg, err := rt.RESTConfig()
			if err != nil {
				return err
			}
			wo := def
			wo.Namespace = rt.Common.Namespace
			wo.Workers = opts.Workers
			wo.Concurrency = opts.WriteConcurrency
			wo.Leader = opts.Leader
			wo.ResyncPeriod = opts.ResyncPeriod
			wo.Registerer = rt.Registry
			w, err := watcher.New(cfg, wo)
			if err != nil {
				return err
			}
			rt.Health.AddReadiness("informers", w.Ready)
			return w.Run(ctx)
		},
	}
}
