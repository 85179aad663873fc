package main

import (
	"context"

	"github.com/orbit-workbench/orbit-controller/pkg/certs"
	"github.com/orbit-workbench/orbit-controller/pkg/cli"
	"github.com/orbit-workbench/orbit-controller/services/image-updater/internal/app"
)

func command(version string) cli.Command {
	opts := app.DefaultOptions()
	return cli.Command{
		Name:    app.Name,
		Version: version,
		Short:   "mutating admission webhook rewriting Pod images to the private mirror",
		Options: &opts,
		Env:     app.Env(),
		Run:     func(ctx context.Context, rt *cli.Runtime) error { return app.Run(ctx, rt, opts) },
		Subcommands: map[string]cli.Subcommand{
			"setup": certs.SetupSubcommand(app.Name, opts.Certs),
		},
	}
}
