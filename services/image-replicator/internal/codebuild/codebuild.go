// Package codebuild is the replication backend of the original platform: an
// AWS CodeBuild build with a privileged docker daemon that logs in, creates
// the ECR repository, and pulls, tags and pushes the image. It is
// asynchronous: Start returns the build id, Poll reports until the build
// leaves IN_PROGRESS.
//
// docker pull/push moves the build host's platform only and may re-encode the
// manifest, so digests are not preserved; the image-updater maps digest
// references to sha256-<hex> tags for this backend.
package codebuild

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awscodebuild "github.com/aws/aws-sdk-go-v2/service/codebuild"
	"github.com/aws/aws-sdk-go-v2/service/codebuild/types"

	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/awserr"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/replicate"
)

// API is the part of *codebuild.Client the backend uses.
type API interface {
	StartBuild(ctx context.Context, in *awscodebuild.StartBuildInput, opts ...func(*awscodebuild.Options)) (*awscodebuild.StartBuildOutput, error)
	BatchGetBuilds(ctx context.Context, in *awscodebuild.BatchGetBuildsInput, opts ...func(*awscodebuild.Options)) (*awscodebuild.BatchGetBuildsOutput, error)
}

// DefaultTimeoutMinutes is IMAGE_REPLICATIONS_CODEBUILD_TIMEOUT's default.
const DefaultTimeoutMinutes = 30

// Options configure the backend.
type Options struct {
	// Project is the CodeBuild project (IMAGE_REPLICATIONS_CODEBUILD_PROJECT).
	Project string
	// TimeoutMinutes bounds one build (IMAGE_REPLICATIONS_CODEBUILD_TIMEOUT);
	// 0 means DefaultTimeoutMinutes. CodeBuild accepts 5 to 2160.
	TimeoutMinutes int32
	// Image overrides the project's build image (ORBIT_CODEBUILD_IMAGE).
	Image string
	// EnvTag is the Env tag on repositories the build creates (REPO_PREFIX).
	EnvTag string
	// SourceLogins maps a source registry host to an AWS Secrets Manager
	// secret whose JSON has "username" and "password"; the build logs in with
	// it. Secrets Manager keeps the password out of the build's recorded
	// environment. Other ECR registries need no entry: the build's role logs in.
	SourceLogins map[string]string
}

// Backend starts and polls CodeBuild builds. It holds no per-build state:
// the build id is the whole state, kept by the caller in the resource status.
type Backend struct {
	api  API
	opts Options
}

// New checks opts and returns a Backend.
func New(api API, opts Options) (*Backend, error) {
	if api == nil {
		return nil, errors.New("codebuild: no API client")
	}
	if opts.Project == "" {
		return nil, errors.New("codebuild: no project")
	}
	if opts.TimeoutMinutes == 0 {
		opts.TimeoutMinutes = DefaultTimeoutMinutes
	}
	if opts.TimeoutMinutes < 5 || opts.TimeoutMinutes > 2160 {
		return nil, fmt.Errorf("codebuild: timeout %d minutes: CodeBuild accepts 5 to 2160", opts.TimeoutMinutes)
	}
	return &Backend{api: api, opts: opts}, nil
}

// Start starts a build replicating req. Configuration problems (a
// destination that is not ECR or pins a digest) are errors; throttling and
// the concurrent-build limit are retryable errors.
func (b *Backend) Start(ctx context.Context, req replicate.Request) (replicate.Status, error) {
	spec, err := Buildspec(req, b.opts)
	if err != nil {
		return replicate.Status{}, err
	}
	in := &awscodebuild.StartBuildInput{
		ProjectName:              aws.String(b.opts.Project),
		SourceTypeOverride:       types.SourceTypeNoSource,
		BuildspecOverride:        aws.String(spec),
		TimeoutInMinutesOverride: aws.Int32(b.opts.TimeoutMinutes),
		PrivilegedModeOverride:   aws.Bool(true),
	}
	if b.opts.Image != "" {
		in.ImageOverride = aws.String(b.opts.Image)
	}
	out, err := b.api.StartBuild(ctx, in)
	if err != nil {
		return replicate.Status{}, fmt.Errorf("start build in %s for %s: %w", b.opts.Project, req.Source, awserr.Classify(err))
	}
	if out.Build == nil || aws.ToString(out.Build.Id) == "" {
		return replicate.Status{}, fmt.Errorf("start build in %s for %s: no build id in the response", b.opts.Project, req.Source)
	}
	st := status(out.Build)
	if !st.Done {
		st.Message = fmt.Sprintf("build %s started", st.ID)
	}
	return st, nil
}

// Poll reads the build's status.
func (b *Backend) Poll(ctx context.Context, id string) (replicate.Status, error) {
	out, err := b.api.BatchGetBuilds(ctx, &awscodebuild.BatchGetBuildsInput{Ids: []string{id}})
	if err != nil {
		return replicate.Status{}, fmt.Errorf("get build %s: %w", id, awserr.Classify(err))
	}
	for i := range out.Builds {
		if aws.ToString(out.Builds[i].Id) == id {
			return status(&out.Builds[i]), nil
		}
	}
	// Builds are kept for a year; one that is gone will never finish.
	return replicate.Status{ID: id, Done: true, Message: fmt.Sprintf("build %s not found", id)}, nil
}

// status maps a build to a Status: SUCCEEDED succeeds; FAILED, FAULT, STOPPED
// and TIMED_OUT fail with the failing phase's messages; anything else
// (IN_PROGRESS) is not done.
func status(build *types.Build) replicate.Status {
	id := aws.ToString(build.Id)
	switch build.BuildStatus {
	case types.StatusTypeSucceeded:
		return replicate.Status{ID: id, Done: true, Succeeded: true, Message: fmt.Sprintf("build %s succeeded", id)}
	case types.StatusTypeFailed, types.StatusTypeFault, types.StatusTypeStopped, types.StatusTypeTimedOut:
		msg := fmt.Sprintf("build %s %s", id, build.BuildStatus)
		if why := failure(build.Phases); why != "" {
			msg += ": " + why
		}
		return replicate.Status{ID: id, Done: true, Message: msg}
	default:
		return replicate.Status{ID: id, Message: fmt.Sprintf("build %s %s", id, build.BuildStatus)}
	}
}

// failure describes the first phase that ended other than SUCCEEDED.
func failure(phases []types.BuildPhase) string {
	for _, p := range phases {
		if p.PhaseStatus == "" || p.PhaseStatus == types.StatusTypeSucceeded || p.PhaseStatus == types.StatusTypeInProgress {
			continue
		}
		var msgs []string
		for _, c := range p.Contexts {
			if m := strings.TrimSpace(aws.ToString(c.Message)); m != "" {
				msgs = append(msgs, m)
			}
		}
		s := fmt.Sprintf("phase %s %s", p.PhaseType, p.PhaseStatus)
		if len(msgs) > 0 {
			s += ": " + strings.Join(msgs, "; ")
		}
		return s
	}
	return ""
}
