// Package app runs the image-replicator (SPEC §3.6): the controller over ImageReplications
// under leader election, or, with --inventory, one pass over a list of images.
package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/orbit-workbench/orbit-controller/pkg/cli"
	"github.com/orbit-workbench/orbit-controller/pkg/config"
	"github.com/orbit-workbench/orbit-controller/pkg/controller"
	"github.com/orbit-workbench/orbit-controller/pkg/kube"
	"github.com/orbit-workbench/orbit-controller/pkg/orbitclient"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/codebuild"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/credentials"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/replicator"
)

// Name is the binary's name.
const Name = "image-replicator"

// Backends of --backend.
const (
	BackendCodeBuild = "codebuild"
	BackendCopy      = "copy"
)

// copyProgressDelay: a copy shows as Replicating once it has run this long (a quick one is
// recorded with its outcome alone, one status write instead of two).
const copyProgressDelay = time.Second

// LeaseName is the leader-election Lease in --namespace: named after the service, like every
// watcher's, which is what the chart's Role grants.
const LeaseName = Name

// Options are the image-replicator's own flags.
type Options struct {
	Watcher controller.WatcherOptions

	Backend               string
	CodeBuildProject      string
	CodeBuildTimeout      int // minutes
	CodeBuildImage        string
	CodeBuildSourceLogins map[string]string
	MaxAttempts           int
	Inventory             string

	RepoHost               string
	RepoPrefix             string
	ReplicateExternalRepos bool

	DockerConfigSecrets []string
	InsecureRegistries  bool
	AWSRegion           string
	CopyJobs            int

	PollInterval       time.Duration
	RetryBackoff       time.Duration
	RetryBackoffMax    time.Duration
	ReplicationTimeout time.Duration
	ResyncPeriod       time.Duration

	// AWSConfig, when set, is used instead of the standard credential chain (tests point it
	// at a loopback endpoint). Never set from flags.
	AWSConfig *aws.Config
	// Queue, when set, replaces the work queue's error backoff (tests). Never set from flags.
	Queue *controller.QueueOptions
}

// DefaultOptions: CodeBuild backend (the original's), three attempts, 30-minute builds.
func DefaultOptions() Options {
	d := replicator.DefaultOptions()
	return Options{
		Watcher:            controller.DefaultWatcherOptions(),
		Backend:            BackendCodeBuild,
		CodeBuildTimeout:   codebuild.DefaultTimeoutMinutes,
		MaxAttempts:        int(d.MaxAttempts),
		CopyJobs:           4,
		PollInterval:       d.PollInterval,
		RetryBackoff:       d.Backoff.Base,
		RetryBackoffMax:    d.Backoff.Max,
		ReplicationTimeout: d.StartTimeout,
		ResyncPeriod:       10 * time.Minute,
	}
}

// Env binds the environment keys of SPEC §2 to the flags.
func Env() []config.Binding {
	return []config.Binding{
		{Env: "IMAGE_REPLICATIONS_WATCHER_WORKERS", Flag: "workers"},
		{Env: "IMAGE_REPLICATIONS_CODEBUILD_PROJECT", Flag: "codebuild-project"},
		{Env: "IMAGE_REPLICATIONS_CODEBUILD_TIMEOUT", Flag: "codebuild-timeout"},
		{Env: "ORBIT_CODEBUILD_IMAGE", Flag: "codebuild-image"},
		{Env: "MAX_REPLICATION_ATTEMPTS", Flag: "max-attempts"},
		{Env: "IMAGE_REPLICATIONS_REPO_PREFIX", Flag: "repo-prefix"},
		{Env: "IMAGE_REPLICATIONS_REPO_HOST", Flag: "repo-host"},
		{Env: "IMAGE_REPLICATIONS_REPLICATE_EXTERNAL_REPOS", Flag: "replicate-external-repos", Convert: config.BoolConvert},
	}
}

// BindFlags binds the flags.
func (o *Options) BindFlags(fs *pflag.FlagSet) {
	o.Watcher.BindFlags(fs)
	fs.StringVar(&o.Backend, "backend", o.Backend, "replication backend: codebuild (docker pull/push in an AWS CodeBuild build) or copy (registry to registry, digests kept)")
	fs.StringVar(&o.CodeBuildProject, "codebuild-project", o.CodeBuildProject, "CodeBuild project that replicates (required with --backend=codebuild)")
	fs.IntVar(&o.CodeBuildTimeout, "codebuild-timeout", o.CodeBuildTimeout, "timeout of one CodeBuild build, in minutes (5-2160)")
	fs.StringVar(&o.CodeBuildImage, "codebuild-image", o.CodeBuildImage, "build image overriding the CodeBuild project's")
	fs.StringToStringVar(&o.CodeBuildSourceLogins, "codebuild-source-logins", o.CodeBuildSourceLogins,
		"source registry=Secrets Manager secret (JSON with username and password) the build logs in with, e.g. quay.io=arn:aws:secretsmanager:…")
	fs.IntVar(&o.MaxAttempts, "max-attempts", o.MaxAttempts, "replication attempts per image before it is Failed")
	fs.StringVar(&o.Inventory, "inventory", o.Inventory,
		"replicate every image of this list file once and exit (one image per line, optionally followed by its mirror reference; # comments)")
	fs.StringVar(&o.RepoHost, "repo-host", o.RepoHost, "the mirror registry, for --inventory lines without a mirror reference")
	fs.StringVar(&o.RepoPrefix, "repo-prefix", o.RepoPrefix, "repository path under the mirror, and the Env tag of ECR repositories created")
	fs.BoolVar(&o.ReplicateExternalRepos, "replicate-external-repos", o.ReplicateExternalRepos, "with --inventory, also mirror images of other accounts' ECR registries")
	fs.StringSliceVar(&o.DockerConfigSecrets, "docker-config-secret", o.DockerConfigSecrets,
		"Secrets (kubernetes.io/dockerconfigjson) in --namespace with credentials for source registries (copy backend and mirror checks); repeat or comma-separate, the first naming a registry wins")
	fs.BoolVar(&o.InsecureRegistries, "insecure-registries", o.InsecureRegistries, "allow plain HTTP to every registry (tests and local setups; loopback registries never need it)")
	fs.StringVar(&o.AWSRegion, "aws-region", o.AWSRegion, "AWS region of CodeBuild and the ECR mirror (default: the environment's, e.g. AWS_REGION)")
	fs.IntVar(&o.CopyJobs, "copy-jobs", o.CopyJobs, "blobs of one image the copy backend moves at once")
	fs.DurationVar(&o.PollInterval, "poll-interval", o.PollInterval, "how often a running CodeBuild build is polled")
	fs.DurationVar(&o.RetryBackoff, "retry-backoff", o.RetryBackoff, "wait after the first failed attempt, doubled after each further one")
	fs.DurationVar(&o.RetryBackoffMax, "retry-backoff-max", o.RetryBackoffMax, "longest wait between attempts")
	fs.DurationVar(&o.ReplicationTimeout, "replication-timeout", o.ReplicationTimeout, "bound on starting one attempt (a whole copy with --backend=copy)")
	fs.DurationVar(&o.ResyncPeriod, "resync-period", o.ResyncPeriod, "how often every ImageReplication is looked at again without a change")
}

// Validate checks the flags; errors start with the flag ("--flag: …"), which the shell turns
// into the environment key when the value came from there.
func (o *Options) Validate() error {
	if err := o.Watcher.Validate(); err != nil {
		return err
	}
	switch o.Backend {
	case BackendCopy:
	case BackendCodeBuild:
		if strings.TrimSpace(o.CodeBuildProject) == "" {
			return errors.New("--codebuild-project: required with --backend=codebuild (environment IMAGE_REPLICATIONS_CODEBUILD_PROJECT)")
		}
		if o.CodeBuildTimeout < 5 || o.CodeBuildTimeout > 2160 {
			return fmt.Errorf("--codebuild-timeout: %d minutes is outside CodeBuild's 5-2160", o.CodeBuildTimeout)
		}
	default:
		return fmt.Errorf("--backend: unknown backend %q (want codebuild or copy)", o.Backend)
	}
	if o.MaxAttempts < 1 || o.MaxAttempts > 100 {
		return fmt.Errorf("--max-attempts: %d is out of range 1-100", o.MaxAttempts)
	}
	if o.Inventory != "" {
		if _, err := os.Stat(o.Inventory); err != nil {
			return fmt.Errorf("--inventory: %w", err)
		}
	}
	if o.RepoHost != "" {
		if _, err := name.NewRegistry(o.RepoHost, name.StrictValidation); err != nil || o.RepoHost != strings.ToLower(o.RepoHost) {
			return fmt.Errorf("--repo-host: %q is not a lower-case registry host", o.RepoHost)
		}
	}
	for _, name := range o.DockerConfigSecrets {
		if strings.TrimSpace(name) == "" {
			return errors.New("--docker-config-secret: empty Secret name")
		}
	}
	if o.CopyJobs < 1 {
		return fmt.Errorf("--copy-jobs: %d must be positive", o.CopyJobs)
	}
	for flag, d := range map[string]time.Duration{
		"--poll-interval": o.PollInterval, "--retry-backoff": o.RetryBackoff, "--replication-timeout": o.ReplicationTimeout,
	} {
		if d <= 0 {
			return fmt.Errorf("%s: %s must be positive", flag, d)
		}
	}
	if o.RetryBackoffMax < o.RetryBackoff {
		return fmt.Errorf("--retry-backoff-max: %s is less than --retry-backoff %s", o.RetryBackoffMax, o.RetryBackoff)
	}
	if o.ResyncPeriod < 0 {
		return fmt.Errorf("--resync-period: %s must not be negative", o.ResyncPeriod)
	}
	return nil
}

func (o *Options) controllerOptions() replicator.Options {
	r := replicator.DefaultOptions()
	r.FieldManager = Name
	r.MaxAttempts = int32(o.MaxAttempts)
	r.Backoff = replicator.Backoff{Base: o.RetryBackoff, Max: o.RetryBackoffMax}
	r.PollInterval = o.PollInterval
	r.StartTimeout = o.ReplicationTimeout
	// --workers replications run at once; twice as many more reconcile goroutines keep them
	// busy while others wait on the API server.
	r.Concurrency = o.Watcher.Workers
	r.Workers = 3 * o.Watcher.Workers
	if o.Backend == BackendCopy {
		r.ProgressDelay = copyProgressDelay
	}
	if o.Queue != nil {
		r.Queue = *o.Queue
	}
	return r
}

// Run replicates until ctx ends, or once over --inventory.
func Run(ctx context.Context, rt *cli.Runtime, opts Options) error {
	if opts.Inventory != "" {
		return runInventory(ctx, rt, opts)
	}
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
	ns := rt.Common.Namespace
	g, ctx := errgroup.WithContext(ctx)
	var sourceCreds []authn.Keychain
	for _, name := range opts.DockerConfigSecrets {
		secret := credentials.NewWatcher(client, ns, name)
		rt.Health.AddReadiness("registryCredentials/"+name, secret.Ready)
		g.Go(func() error { return secret.Run(ctx) })
		sourceCreds = append(sourceCreds, secret)
	}
	d, err := opts.dependencies(ctx, sourceCreds)
	if err != nil {
		return err
	}
	irs := orbit.ImageReplications(ns)
	state := controller.NewStateWriter(client, ns, controller.StateKeyImageReplications, Name)
	ctrl, err := replicator.New(irs, irs.Informer(opts.ResyncPeriod), d.backend, d.checker, state, rt.Registry, Name, opts.controllerOptions())
	if err != nil {
		return err
	}
	var leading atomic.Bool
	rt.Health.AddReadiness("imageReplications", func(ctx context.Context) error {
		if !leading.Load() {
			return nil // a standby has nothing to be ready for
		}
		return ctrl.Ready(ctx)
	})
	rt.Log.Info().Str("backend", opts.Backend).Int("maxAttempts", opts.MaxAttempts).Str("namespace", ns).Msg("watching ImageReplications")
	g.Go(func() error {
		return controller.RunLeader(ctx, opts.Watcher.Leader, client, ns, LeaseName, "", func(ctx context.Context) {
			leading.Store(true)
			stateDone := make(chan struct{})
			go func() { state.Run(ctx); close(stateDone) }()
			if err := ctrl.Run(ctx); err != nil && ctx.Err() == nil {
				rt.Log.Error().Err(err).Msg("controller stopped")
			}
			<-stateDone
		})
	})
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
