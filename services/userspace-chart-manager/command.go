package main

import (
	"context"

	"github.com/orbit-workbench/orbit-controller/pkg/cli"
	"github.com/orbit-workbench/orbit-controller/pkg/config"
	"github.com/orbit-workbench/orbit-controller/services/userspace-chart-manager/internal/chartmanager"
)

func command(version string) cli.Command {
	opts := chartmanager.DefaultOptions()
	return cli.Command{
		Name:    chartmanager.Name,
		Version: version,
		Short:   "per-user Helm releases for every user namespace",
		Options: &opts,
		Env:     []config.Binding{{Env: "USERSPACE_CHART_MANAGER_WORKERS", Flag: "workers"}},
		Run: func(ctx context.Context, rt *cli.Runtime) error {
			cfg, err := rt.RESTConfig()
			if err != nil {
				return err
			}
			run := opts
			run.Namespace = rt.Common.Namespace
			return chartmanager.Run(ctx, cfg, run, rt.Registry, rt.Health)
		},
	}
}
