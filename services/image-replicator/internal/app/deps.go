package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awscodebuild "github.com/aws/aws-sdk-go-v2/service/codebuild"
	awsecr "github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/rs/zerolog"

	"github.com/orbit-workbench/orbit-controller/pkg/cli"
	"github.com/orbit-workbench/orbit-controller/pkg/kube"
	"github.com/orbit-workbench/orbit-controller/pkg/mirror"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/awsconfig"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/codebuild"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/copier"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/credentials"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/ecr"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/inventory"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/oci"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/replicate"
)

// dependencies are the backend and the mirror check the options ask for.
type dependencies struct {
	backend replicate.Backend
	checker replicate.Checker
}

// awsConfig loads the AWS configuration. The codebuild backend and an explicit --aws-region
// need one; the copy backend goes without when the environment has none (its mirror is then
// not ECR, and an ECR destination fails with a message saying so).
func (o *Options) awsConfig(ctx context.Context) (*aws.Config, error) {
	if o.AWSConfig != nil {
		return o.AWSConfig, nil
	}
	cfg, err := awsconfig.Load(ctx, o.AWSRegion)
	if err != nil {
		if o.Backend == BackendCodeBuild || o.AWSRegion != "" {
			return nil, err
		}
		zerolog.Ctx(ctx).Info().Err(err).Msg("no AWS configuration: ECR destinations cannot be checked or created")
		return nil, nil
	}
	return &cfg, nil
}

// dependencies builds the backend and the mirror check; sourceCreds are the source
// registries' credentials, tried in order after ECR's.
func (o *Options) dependencies(ctx context.Context, sourceCreds []authn.Keychain) (dependencies, error) {
	awsCfg, err := o.awsConfig(ctx)
	if err != nil {
		return dependencies{}, err
	}
	var registry *ecr.Registry
	var keychains []authn.Keychain
	if awsCfg != nil {
		registry, err = ecr.New(awsecr.NewFromConfig(*awsCfg), ecr.Options{Region: awsCfg.Region, EnvTag: o.RepoPrefix})
		if err != nil {
			return dependencies{}, err
		}
		keychains = append(keychains, registry)
	}
	keychains = append(keychains, sourceCreds...)
	keychain := authn.NewMultiKeychain(keychains...)
	check := mirrorCheck{ecr: registry, oci: oci.NewChecker(o.InsecureRegistries, remote.WithAuthFromKeychain(keychain))}

	switch o.Backend {
	case BackendCopy:
		copts := copier.Options{Keychain: keychain, Insecure: o.InsecureRegistries, Jobs: o.CopyJobs}
		if registry != nil {
			copts.Creator = registry
		}
		return dependencies{backend: copier.New(copts), checker: check}, nil
	case BackendCodeBuild:
		b, err := codebuild.New(awscodebuild.NewFromConfig(*awsCfg), codebuild.Options{
			Project: o.CodeBuildProject, TimeoutMinutes: int32(o.CodeBuildTimeout), Image: o.CodeBuildImage,
			EnvTag: o.RepoPrefix, SourceLogins: o.CodeBuildSourceLogins,
		})
		if err != nil {
			return dependencies{}, err
		}
		return dependencies{backend: b, checker: check}, nil
	}
	return dependencies{}, fmt.Errorf("--backend: unknown backend %q", o.Backend)
}

// mirrorCheck asks ECR (DescribeImages) about an ECR destination and any other registry with
// one manifest HEAD.
type mirrorCheck struct {
	ecr *ecr.Registry
	oci *oci.Checker
}

func (m mirrorCheck) Has(ctx context.Context, ref string) (bool, error) {
	if m.ecr != nil {
		if r, err := name.ParseReference(ref); err == nil {
			if _, ok := ecr.ParseHost(r.Context().RegistryStr()); ok {
				return m.ecr.Has(ctx, ref)
			}
		}
	}
	return m.oci.Has(ctx, ref)
}

// runInventory replicates every image of --inventory once. It prints one summary line and
// fails, naming every failed image, when any did not make it.
func runInventory(ctx context.Context, rt *cli.Runtime, opts Options) error {
	f, err := os.Open(opts.Inventory)
	if err != nil {
		return fmt.Errorf("open --inventory: %w", err)
	}
	entries, err := inventory.Parse(f)
	_ = f.Close()
	if err != nil {
		return fmt.Errorf("--inventory %s: %w", opts.Inventory, err)
	}
	var creds []authn.Keychain
	if len(opts.DockerConfigSecrets) > 0 {
		cfg, err := rt.RESTConfig()
		if err != nil {
			return err
		}
		client, err := kube.Clientset(cfg)
		if err != nil {
			return err
		}
		for _, name := range opts.DockerConfigSecrets {
			kc, err := credentials.Load(ctx, client, rt.Common.Namespace, name)
			if err != nil {
				return err
			}
			creds = append(creds, kc)
		}
	}
	d, err := opts.dependencies(ctx, creds)
	if err != nil {
		return err
	}
	// The image-updater's own rules, so a pre-seeded mirror holds exactly the references it
	// later rewrites Pods to.
	policy := mirror.Policy{
		RepoHost: opts.RepoHost, RepoPrefix: opts.RepoPrefix,
		ReplicateExternalRepos: opts.ReplicateExternalRepos, Backend: mirror.BackendCodeBuild,
	}
	if opts.Backend == BackendCopy {
		policy.Backend = mirror.BackendCopy
	}
	if err := policy.Validate(); err != nil {
		return fmt.Errorf("--inventory: %w", err)
	}
	runner := inventory.Runner{
		Backend: d.backend, Checker: d.checker, Map: func(image string) (string, bool, error) { return mirror.Desired(image, policy) },
		PollInterval: opts.PollInterval, Concurrency: opts.Watcher.Workers,
	}
	rt.Log.Info().Str("inventory", opts.Inventory).Int("images", len(entries)).Str("backend", opts.Backend).Msg("replicating inventory")
	summary, err := runner.Run(ctx, entries)
	for _, r := range summary.Results {
		ev := rt.Log.Info()
		if r.Outcome == inventory.Failed {
			ev = rt.Log.Error()
		}
		ev.Int("line", r.Line).Str("image", r.Source).Str("destination", r.Destination).
			Str("outcome", string(r.Outcome)).Str("message", r.Message).Msg("inventory image")
	}
	if _, werr := fmt.Fprintln(rt.Stdout, summary.String()); werr != nil {
		err = errors.Join(err, fmt.Errorf("write summary: %w", werr))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", strings.TrimSpace(summary.String()), err)
	}
	return nil
}
