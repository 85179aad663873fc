package main

import (
	"context"

	"github.com/spf13/pflag"

	"github.com/orbit-workbench/orbit-controller/pkg/cli"
	"github.com/orbit-workbench/orbit-controller/pkg/config"
	"github.com/orbit-workbench/orbit-controller/pkg/controller"
)

const name = "userspace-chart-manager"

type options struct {
	controller.WatcherOptions
}

func (o *options) BindFlags(fs *pflag.FlagSet) { o.WatcherOptions.BindFlags(fs) }
func (o *options) Validate() error            { return o.WatcherOptions.Validate() }

func command(version string) cli.Command {
	opts := &options{WatcherOptions: controller.DefaultWatcherOptions()}
	return cli.Command{
		Name:    name,
		Version: version,
		Short:   "per-user Helm releases for every user namespace",
		Options: opts,
		Env:     []config.Binding{{Env: "USERSPACE_CHART_MANAGER_WORKERS", Flag: "workers"}},
		Run: func(ctx context.Context, rt *cli.Runtime) error {
			<-ctx.Done()
			return nil
		},
	}
}
