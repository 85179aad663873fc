// Package app runs the image-updater: the ImageReplication cache and creator, the admission
// handler and the TLS server (SPEC §3.5).
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/orbit-workbench/orbit-controller/pkg/certs"
	"github.com/orbit-workbench/orbit-controller/pkg/cli"
	"github.com/orbit-workbench/orbit-controller/pkg/config"
	"github.com/orbit-workbench/orbit-controller/pkg/kube"
	"github.com/orbit-workbench/orbit-controller/pkg/logging"
	"github.com/orbit-workbench/orbit-controller/pkg/mirror"
	"github.com/orbit-workbench/orbit-controller/pkg/orbitclient"
	"github.com/orbit-workbench/orbit-controller/pkg/webhook"
	"github.com/orbit-workbench/orbit-controller/services/image-updater/internal/handler"
	"github.com/orbit-workbench/orbit-controller/services/image-updater/internal/replications"
)

// Name is the binary's name.
const Name = "image-updater"

// Options are the image-updater's own flags.
type Options struct {
	ListenAddress string
	Certs         certs.Options

	RepoHost               string
	RepoPrefix             string
	ReplicationBackend     string
	ReplicateExternalRepos bool
	Policy                 string
	ExcludeNamespaces      []string
	ExcludeImages          []string
	// QueueSize bounds the ImageReplication creations waiting for a worker.
	QueueSize int

	// Listener, when set, is served instead of listening on ListenAddress (tests).
	Listener net.Listener
}

// DefaultOptions: TLS on :8443, self-signed certificate in Secret image-updater-cert for the
// Service image-updater, CodeBuild digest rule, every mapped image rewritten.
func DefaultOptions() Options {
	c := certs.DefaultOptions()
	c.Secret, c.ServiceName, c.WebhookConfig = Name+"-cert", Name, "orbit-"+Name
	return Options{
		ListenAddress:      ":8443",
		Certs:              c,
		ReplicationBackend: string(mirror.BackendCodeBuild),
		Policy:             string(handler.RewriteAlways),
		QueueSize:          1024,
	}
}

// Env binds the environment keys of SPEC §2 to the flags.
func Env() []config.Binding {
	return []config.Binding{
		{Env: "IMAGE_REPLICATIONS_REPO_HOST", Flag: "repo-host"},
		{Env: "IMAGE_REPLICATIONS_REPO_PREFIX", Flag: "repo-prefix"},
		{Env: "IMAGE_REPLICATIONS_REPLICATE_EXTERNAL_REPOS", Flag: "replicate-external-repos", Convert: config.BoolConvert},
	}
}

// BindFlags binds the flags.
func (o *Options) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.ListenAddress, "listen-address", o.ListenAddress, "TLS listener of the admission webhook")
	o.Certs.BindFlags(fs)
	fs.StringVar(&o.RepoHost, "repo-host", o.RepoHost, "the mirror registry, e.g. 123456789012.dkr.ecr.us-west-2.amazonaws.com (required)")
	fs.StringVar(&o.RepoPrefix, "repo-prefix", o.RepoPrefix, "repository path every mirrored image goes under, e.g. orbit-dev")
	fs.StringVar(&o.ReplicationBackend, "replication-backend", o.ReplicationBackend,
		"the image-replicator's backend, which decides digest references: codebuild (digest → sha256-<hex> tag) or copy (digest kept)")
	fs.BoolVar(&o.ReplicateExternalRepos, "replicate-external-repos", o.ReplicateExternalRepos, "also mirror images of other accounts' ECR registries")
	fs.StringVar(&o.Policy, "policy", o.Policy,
		"which images are rewritten: always, or whenReplicated (only images whose ImageReplication is Complete; the rest are requested)")
	fs.StringSliceVar(&o.ExcludeNamespaces, "exclude-namespaces", o.ExcludeNamespaces,
		"namespaces whose Pods are never rewritten: globs (* and ?) or re:<RE2>, matching the whole name")
	fs.StringSliceVar(&o.ExcludeImages, "exclude-images", o.ExcludeImages,
		"images never rewritten: globs (* and ?) or re:<RE2>, matched against the image as written and fully qualified")
	fs.IntVar(&o.QueueSize, "replication-queue-size", o.QueueSize, "ImageReplication creations that may wait for a worker before requests are dropped")
}

// Validate checks the flags.
func (o *Options) Validate() error {
	if _, _, err := net.SplitHostPort(o.ListenAddress); err != nil {
		return fmt.Errorf("--listen-address: %q is not host:port: %w", o.ListenAddress, err)
	}
	if err := o.Certs.Validate(); err != nil {
		return err
	}
	if _, err := o.config(); err != nil {
		return err
	}
	if o.QueueSize < 1 {
		return fmt.Errorf("--replication-queue-size: %d must be positive", o.QueueSize)
	}
	return nil
}

// config turns the flags into the handler's configuration; errors name the flag.
func (o *Options) config() (handler.Config, error) {
	if strings.TrimSpace(o.RepoHost) == "" {
		return handler.Config{}, errors.New("--repo-host: required (environment IMAGE_REPLICATIONS_REPO_HOST)")
	}
	backend, err := mirror.ParseBackend(o.ReplicationBackend)
	if err != nil {
		return handler.Config{}, fmt.Errorf("--replication-backend: %w", err)
	}
	p := mirror.Policy{
		RepoHost: strings.TrimSpace(o.RepoHost), RepoPrefix: strings.TrimSpace(o.RepoPrefix),
		ReplicateExternalRepos: o.ReplicateExternalRepos, Backend: backend,
	}
	if err := p.Validate(); err != nil {
		flag := "--repo-host"
		if strings.Contains(err.Error(), "prefix") {
			flag = "--repo-prefix"
		}
		return handler.Config{}, fmt.Errorf("%s: %w", flag, err)
	}
	rewrite, err := handler.ParseRewrite(o.Policy)
	if err != nil {
		return handler.Config{}, fmt.Errorf("--policy: %w", err)
	}
	excl, err := mirror.NewExclusions(o.ExcludeNamespaces, o.ExcludeImages)
	if err != nil {
		return handler.Config{}, fmt.Errorf("--exclude-namespaces/--exclude-images: %w", err)
	}
	return handler.Config{Policy: p, Exclusions: excl, Rewrite: rewrite}, nil
}

// Run serves admissions until ctx ends.
func Run(ctx context.Context, rt *cli.Runtime, opts Options) error {
	cfg, err := opts.config()
	if err != nil {
		return err
	}
	restCfg, err := rt.RESTConfig()
	if err != nil {
		return err
	}
	client, err := kube.Clientset(restCfg)
	if err != nil {
		return err
	}
	orbit, err := orbitclient.New(restCfg)
	if err != nil {
		return err
	}
	store, err := replications.New(orbit, rt.Registry, Name, replications.Options{
		Namespace: rt.Common.Namespace, FieldManager: Name, QueueSize: opts.QueueSize,
	})
	if err != nil {
		return err
	}
	rt.Health.AddReadiness("imageReplications", store.Ready)
	h, err := handler.New(cfg, store, rt.Registry, Name, rt.Common.Logging.Verbosity)
	if err != nil {
		return err
	}
	certSource, err := certs.NewSource(client, rt.Common.Namespace, opts.Certs, nil)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	rt.Health.AddReadiness("certificate", certSource.Ready)

	router := webhook.NewRouter(rt.Log, webhook.NewMetrics(rt.Registry, Name))
	router.Admit(handler.Path, h.Admit)

	ln := opts.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", opts.ListenAddress); err != nil {
			return fmt.Errorf("listen on --listen-address %s: %w", opts.ListenAddress, err)
		}
	}
	rt.Log.Info().Str("listenAddress", ln.Addr().String()).Str(logging.KeyPath, handler.Path).
		Str("repoHost", cfg.Policy.RepoHost).Str("repoPrefix", cfg.Policy.RepoPrefix).
		Str("backend", string(cfg.Policy.Backend)).Str("policy", string(cfg.Rewrite)).Msg("serving admissions")
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return store.Run(ctx) })
	g.Go(func() error { return certSource.Run(ctx) })
	g.Go(func() error { return webhook.Serve(ctx, ln, router, certSource, rt.Common.ShutdownTimeout) })
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
