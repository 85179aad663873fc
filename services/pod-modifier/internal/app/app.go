// Package app runs the pod-modifier: caches, the admission handler and the TLS server.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/orbit-workbench/orbit-controller/pkg/certs"
	"github.com/orbit-workbench/orbit-controller/pkg/cli"
	"github.com/orbit-workbench/orbit-controller/pkg/kube"
	"github.com/orbit-workbench/orbit-controller/pkg/orbitclient"
	"github.com/orbit-workbench/orbit-controller/pkg/webhook"
	"github.com/orbit-workbench/orbit-controller/services/pod-modifier/internal/cache"
	"github.com/orbit-workbench/orbit-controller/services/pod-modifier/internal/handler"
)

// Name is the binary's name.
const Name = "pod-modifier"

// Options are the pod-modifier's own flags.
type Options struct {
	ListenAddress string
	Certs         certs.Options
}

// DefaultOptions: TLS on :8443, self-signed certificate in Secret pod-modifier-cert for the
// Service pod-modifier.
func DefaultOptions() Options {
	c := certs.DefaultOptions()
	c.Secret, c.ServiceName, c.WebhookConfig = Name+"-cert", Name, "orbit-"+Name
	return Options{ListenAddress: ":8443", Certs: c}
}

// BindFlags binds the flags.
func (o *Options) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.ListenAddress, "listen-address", o.ListenAddress, "TLS listener of the admission webhook")
	o.Certs.BindFlags(fs)
}

// Validate checks the flags.
func (o *Options) Validate() error {
	if _, _, err := net.SplitHostPort(o.ListenAddress); err != nil {
		return fmt.Errorf("--listen-address: %q is not host:port: %w", o.ListenAddress, err)
	}
	return o.Certs.Validate()
}

// Run serves admissions until ctx ends.
func Run(ctx context.Context, rt *cli.Runtime, opts Options) error {
	cfg, err := rt.RESTConfig()
	if err != nil {
		return err
	}
	client, err := kube.Clientset(cfg)
	if err != nil {
		return err
	}
	orbit, err := orbitclient.New(cfg)
	if err != nil {
		return err
	}
	store, err := cache.New(client, orbit, rt.Common.Namespace, rt.Registry, rt.Log)
	if err != nil {
		return err
	}
	rt.Health.AddReadiness("caches", store.Synced)

	certSource, err := certs.NewSource(client, rt.Common.Namespace, opts.Certs, nil)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	rt.Health.AddReadiness("certificate", certSource.Ready)
	router := webhook.NewRouter(rt.Log, webhook.NewMetrics(rt.Registry, Name))
	router.Admit(handler.Path, handler.New(store, rt.Registry, rt.Common.Logging.Verbosity).Admit)

	ln, err := net.Listen("tcp", opts.ListenAddress)
	if err != nil {
		return fmt.Errorf("listen on --listen-address %s: %w", opts.ListenAddress, err)
	}
	rt.Log.Info().Str("listenAddress", ln.Addr().String()).Str("path", handler.Path).Msg("serving admissions")
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return store.Run(ctx) })
	g.Go(func() error { return certSource.Run(ctx) })
	g.Go(func() error { return webhook.Serve(ctx, ln, router, certSource, 15*time.Second) })
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
