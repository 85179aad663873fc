// Package ecr is the replicator's view of Amazon ECR: does the mirror hold an
// image (one DescribeImages call for one tag or digest), creating a mirror
// repository tagged Env=<prefix>, and registry credentials from
// GetAuthorizationToken for the copy backend.
package ecr

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecr "github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/awserr"
)

// API is the part of *ecr.Client the replicator uses.
type API interface {
	DescribeImages(ctx context.Context, in *awsecr.DescribeImagesInput, opts ...func(*awsecr.Options)) (*awsecr.DescribeImagesOutput, error)
	CreateRepository(ctx context.Context, in *awsecr.CreateRepositoryInput, opts ...func(*awsecr.Options)) (*awsecr.CreateRepositoryOutput, error)
	GetAuthorizationToken(ctx context.Context, in *awsecr.GetAuthorizationTokenInput, opts ...func(*awsecr.Options)) (*awsecr.GetAuthorizationTokenOutput, error)
}

// Host is a private ECR registry host, <account>.dkr.ecr.<region>.amazonaws.com.
type Host struct {
	Account string
	Region  string
}

var hostPattern = regexp.MustCompile(`^([0-9]{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$`)

// ParseHost reports whether host is a private ECR registry and which.
func ParseHost(host string) (Host, bool) {
	m := hostPattern.FindStringSubmatch(strings.ToLower(host))
	if m == nil {
		return Host{}, false
	}
	return Host{Account: m[1], Region: m[2]}, true
}

// Options configure a Registry.
type Options struct {
	// Region is the region the API client talks to; ECR hosts in other regions
	// are refused rather than asked of the wrong endpoint.
	Region string
	// EnvTag is the value of the Env tag on repositories created here (REPO_PREFIX).
	EnvTag string
	// Now is the clock for token expiry; nil means time.Now.
	Now func() time.Time
}

// tokenSlack renews a registry token this long before ECR says it expires,
// so no copy starts with a token about to lapse.
const tokenSlack = 15 * time.Minute

// Registry talks to ECR in one region. It is safe for concurrent use.
type Registry struct {
	api  API
	opts Options

	mu      sync.Mutex
	auth    *authn.Basic
	expires time.Time
}

// New returns a Registry using api.
func New(api API, opts Options) (*Registry, error) {
	if api == nil {
		return nil, errors.New("ecr: no API client")
	}
	if opts.Region == "" {
		return nil, errors.New("ecr: no region")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Registry{api: api, opts: opts}, nil
}

// host parses the registry of repo and checks it is ECR in our region.
func (r *Registry) host(repo name.Repository) (Host, error) {
	h, ok := ParseHost(repo.RegistryStr())
	if !ok {
		return Host{}, fmt.Errorf("%s is not an ECR registry", repo.RegistryStr())
	}
	if h.Region != r.opts.Region {
		return Host{}, fmt.Errorf("ECR registry %s is in %s, this client in %s", repo.RegistryStr(), h.Region, r.opts.Region)
	}
	return h, nil
}

// Has reports whether the ECR repository of ref holds its tag or digest. It
// asks DescribeImages for that one image id; a missing image or repository
// means absent. A reference with both tag and digest is checked by digest.
func (r *Registry) Has(ctx context.Context, ref string) (bool, error) {
	// A reference without tag or digest means :latest, as docker push does.
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return false, fmt.Errorf("describe image %s: %w", ref, err)
	}
	h, err := r.host(parsed.Context())
	if err != nil {
		return false, fmt.Errorf("describe image %s: %w", ref, err)
	}
	id := types.ImageIdentifier{}
	switch p := parsed.(type) {
	case name.Digest:
		id.ImageDigest = aws.String(p.DigestStr())
	case name.Tag:
		id.ImageTag = aws.String(p.TagStr())
	}
	out, err := r.api.DescribeImages(ctx, &awsecr.DescribeImagesInput{
		RegistryId:     aws.String(h.Account),
		RepositoryName: aws.String(parsed.Context().RepositoryStr()),
		ImageIds:       []types.ImageIdentifier{id},
	})
	if err != nil {
		var notImage *types.ImageNotFoundException
		var notRepo *types.RepositoryNotFoundException
		if errors.As(err, &notImage) || errors.As(err, &notRepo) {
			return false, nil
		}
		return false, fmt.Errorf("describe image %s: %w", ref, awserr.Classify(err))
	}
	return len(out.ImageDetails) > 0, nil
}

// EnsureRepository creates repo in ECR, tagged Env=<EnvTag>, unless it
// exists. Registries other than ECR create repositories on first push, so for
// them this does nothing.
func (r *Registry) EnsureRepository(ctx context.Context, repo name.Repository) error {
	if _, ok := ParseHost(repo.RegistryStr()); !ok {
		return nil
	}
	h, err := r.host(repo)
	if err != nil {
		return fmt.Errorf("create repository %s: %w", repo, err)
	}
	in := &awsecr.CreateRepositoryInput{
		RegistryId:     aws.String(h.Account),
		RepositoryName: aws.String(repo.RepositoryStr()),
	}
	if r.opts.EnvTag != "" {
		in.Tags = []types.Tag{{Key: aws.String("Env"), Value: aws.String(r.opts.EnvTag)}}
	}
	if _, err := r.api.CreateRepository(ctx, in); err != nil {
		var exists *types.RepositoryAlreadyExistsException
		if errors.As(err, &exists) {
			return nil
		}
		return fmt.Errorf("create repository %s: %w", repo, awserr.Classify(err))
	}
	return nil
}

// Resolve implements authn.Keychain. Fetching a token is an API call, which
// needs a context; go-containerregistry always calls ResolveContext (through
// authn.Resolve), so this only refuses direct callers.
func (r *Registry) Resolve(res authn.Resource) (authn.Authenticator, error) {
	return nil, fmt.Errorf("resolve ECR credentials for %s: use authn.Resolve with a context", res.RegistryStr())
}

// ResolveContext implements authn.ContextKeychain: ECR registries of our
// region get the GetAuthorizationToken credentials (valid for every registry
// the caller's IAM identity may use, so other accounts' too); any other
// registry gets authn.Anonymous, letting a MultiKeychain try the next keychain.
func (r *Registry) ResolveContext(ctx context.Context, res authn.Resource) (authn.Authenticator, error) {
	h, ok := ParseHost(res.RegistryStr())
	if !ok || h.Region != r.opts.Region {
		return authn.Anonymous, nil
	}
	auth, err := r.token(ctx)
	if err != nil {
		return nil, err
	}
	return auth, nil
}

// token returns cached registry credentials, fetching new ones when they are
// missing or about to expire (ECR tokens last 12 hours).
func (r *Registry) token(ctx context.Context) (*authn.Basic, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.auth != nil && r.opts.Now().Before(r.expires.Add(-tokenSlack)) {
		return r.auth, nil
	}
	out, err := r.api.GetAuthorizationToken(ctx, &awsecr.GetAuthorizationTokenInput{})
	if err != nil {
		return nil, fmt.Errorf("get ECR authorization token: %w", awserr.Classify(err))
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return nil, errors.New("get ECR authorization token: no authorization data")
	}
	data := out.AuthorizationData[0]
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(data.AuthorizationToken))
	if err != nil {
		return nil, fmt.Errorf("decode ECR authorization token: %w", err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return nil, errors.New("decode ECR authorization token: no user:password")
	}
	r.auth = &authn.Basic{Username: user, Password: pass}
	r.expires = r.opts.Now().Add(12 * time.Hour)
	if data.ExpiresAt != nil {
		r.expires = *data.ExpiresAt
	}
	return r.auth, nil
}
