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
)

func main() {
	var opts options
	flag.BoolVar(&opts.Keep, "keep", false, "leave the platform running after the scenario (Ctrl-C stops it)")
	flag.StringVar(&opts.BinDir, "bin", "bin", "folder with the six service binaries (make build)")
	flag.StringVar(&opts.WorkDir, "workdir", filepath.Join(".cache", "demo"), "folder for logs and the kubeconfig")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, opts, os.Stdout)
	stop()
	os.Exit(code)
}

type options struct {
	Keep    bool
	BinDir  string
	WorkDir string
}

func run(ctx context.Context, opts options, out *os.File) int {
	r := newReport(out)
	p, err := startPlatform(ctx, opts, r)
	if p != nil {
		defer p.Stop(r)
	}
	if err != nil {
		r.Fail(err)
		r.Summary()
		return 1
	}
	ok := playScenario(ctx, p, r)
	r.Summary()
	if opts.Keep && ctx.Err() == nil {
		fmt.Fprintf(out, "\nThe platform keeps running. Explore it with:\n  export KUBECONFIG=%s\n  kubectl get namespaces,podsettings,poddefaults,imagereplications -A\nService logs are in %s. Press Ctrl-C to stop everything.\n", p.Kubeconfig, p.LogDir)
		<-ctx.Done()
	}
	if !ok {
		return 1
	}
	return 0
}
