// Command orbit-demo shows the whole orbit-controller working on one machine: a local control
// plane (etcd, kube-apiserver, kube-controller-manager built from source), the six services as
// local processes, a Helm chart repository and two image registries on loopback, and a short
// scenario — a team with PodSettings, two users logging in, their charts, PodDefaults, a
// notebook Pod mutated and its image mirrored, and a user leaving. Each step prints what it
// checked and how long it took; the run ends with a summary table.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/orbit-workbench/orbit-controller/e2e/platform"
)

func main() {
	var opts platform.Options
	keep := false
	flag.BoolVar(&keep, "keep", false, "leave the platform running after the scenario (Ctrl-C stops it)")
	flag.StringVar(&opts.BinDir, "bin", "bin", "folder with the six service binaries (make build)")
	flag.StringVar(&opts.WorkDir, "workdir", filepath.Join(".cache", "demo"), "folder for logs and the kubeconfig")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, opts, keep, os.Stdout)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, opts platform.Options, keep bool, out *os.File) int {
	r := platform.NewReport(out)
	p, err := platform.Start(ctx, opts, r)
	if p != nil {
		defer p.Stop(r)
	}
	if err != nil {
		r.Fail(err)
		r.Summary()
		return 1
	}
	ok := platform.PlayScenario(ctx, p, r)
	r.Summary()
	if keep && ctx.Err() == nil {
		fmt.Fprintf(out, "\nThe platform keeps running. Explore it with:\n  export KUBECONFIG=%s\n  kubectl get namespaces,podsettings,poddefaults,imagereplications -A\nService logs are in %s. Press Ctrl-C to stop everything.\n", p.Kubeconfig, p.LogDir)
		<-ctx.Done()
	}
	if !ok {
		return 1
	}
	return 0
}
