package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/orbit-workbench/orbit-controller/pkg/cli"
	"github.com/orbit-workbench/orbit-controller/pkg/config"
	"github.com/orbit-workbench/orbit-controller/pkg/controller"

	"github.com/orbit-workbench/orbit-controller/services/podsettings-watcher/watcher"
)

type options struct {
	controller.WatcherOptions
	ResyncPeriod time.Duration
}

func (o *options) BindFlags(fs *pflag.FlagSet) {
	o.WatcherOptions.BindFlags(fs)
	fs.DurationVar(&o.ResyncPeriod, "resync-period", o.ResyncPeriod,
		"how often every PodSetting is looked at again even without a change (repairs drift)")
}

func (o *options) Validate() error {
	if o.ResyncPeriod < 0 {
		return fmt.Errorf("--resync-period: must not be negative, got %s", o.ResyncPeriod)
	}
	return o.WatcherOptions.Validate()
}

func command(version string) cli.Command {
	def := watcher.DefaultOptions()
	opts := &options{WatcherOptions: controller.DefaultWatcherOptions(), ResyncPeriod: def.ResyncPeriod}
	return cli.Command{
		Name:    watcher.Name,
		Version: version,
		Short:   "a Kubeflow PodDefault for every team PodSetting, and a Valid condition on every PodSetting",
		Options: opts,
		Env:     []config.Binding{{Env: "POD_SETTINGS_WATCHER_WORKERS", Flag: "workers"}},
		Run: func(ctx context.Context, rt *cli.Runtime) error {
			cfg, err := rt.RESTConfig()
			if err != nil {
				return err
			}
			wo := def
			wo.Namespace = rt.Common.Namespace
			wo.Workers = opts.Workers
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
