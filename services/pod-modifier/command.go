package main

import (
	"context"

	"github.com/orbit-workbench/orbit-controller/pkg/certs"
	"github.com/orbit-workbench/orbit-controller/pkg/cli"
	"github.com/orbit-workbench/orbit-controller/services/pod-modifier/internal/app"
	"github.com/orbit-workbench/orbit-controller/services/pod-modifier/internal/preview"
)

func command(version string) cli.Command {
	opts := app.DefaultOptions()
	return cli.Command{
		Name:    app.Name,
		Version: version,
		Short:   "mutating admission webhook applying a team's PodSettings to every new Pod",
		Options: &opts,
		Run:     func(ctx context.Context, rt *cli.Runtime) error { return app.Run(ctx, rt, opts) },
		Subcommands: map[string]cli.Subcommand{
			"preview": {Short: "show what the team's PodSettings do to a Pod, offline", Run: preview.Run},
			"setup":   certs.SetupSubcommand(app.Name, opts.Certs),
		},
	}
}
