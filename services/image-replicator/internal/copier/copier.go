// Package copier is the registry-to-registry replication backend: it copies
// manifests and blobs over the OCI distribution API with go-containerregistry,
// byte for byte, so digests survive and multi-platform indexes arrive whole.
// It is synchronous: Start returns when the copy has finished.
package copier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/replicate"
)

// RepositoryCreator makes sure a destination repository exists before the
// push; ecr.Registry is one (ECR does not create repositories on push).
type RepositoryCreator interface {
	EnsureRepository(ctx context.Context, repo name.Repository) error
}

// Options configure a Copier. The zero value copies anonymously over
// remote.DefaultTransport.
type Options struct {
	// Keychain resolves credentials for source and destination; nil means anonymous.
	// Compose e.g. authn.NewMultiKeychain(ecrRegistry, dockerConfigKeychain).
	Keychain authn.Keychain
	// Transport carries registry traffic; nil means remote.DefaultTransport.
	Transport http.RoundTripper
	// Creator, when set, is asked for the destination repository first.
	Creator RepositoryCreator
	// Jobs is how many blobs of one image move at once; 0 means 4.
	Jobs int
	// Insecure allows plain HTTP to registries other than localhost.
	Insecure bool
	// UserAgent is sent to registries; "" means "orbit-image-replicator".
	UserAgent string
}

// Copier copies images between registries. It holds no per-copy state, so
// one Copier serves any number of concurrent copies.
type Copier struct {
	opts     Options
	nameOpts []name.Option
}

// New returns a Copier.
func New(opts Options) *Copier {
	if opts.Jobs <= 0 {
		opts.Jobs = 4
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "orbit-image-replicator"
	}
	c := &Copier{opts: opts}
	if opts.Insecure {
		c.nameOpts = append(c.nameOpts, name.Insecure)
	}
	return c
}

func (c *Copier) remoteOptions(ctx context.Context) []remote.Option {
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithJobs(c.opts.Jobs),
		remote.WithUserAgent(c.opts.UserAgent),
	}
	if c.opts.Keychain != nil {
		opts = append(opts, remote.WithAuthFromKeychain(c.opts.Keychain))
	}
	if c.opts.Transport != nil {
		opts = append(opts, remote.WithTransport(c.opts.Transport))
	}
	return opts
}

// Copy copies src to dst and returns the digest of what it copied.
//
// A destination with a digest must name the source's digest; one with a tag
// and a digest ("repo:tag@sha256:…") is pushed under the tag, which stores the
// manifest under its digest too. A multi-platform index is copied with every
// image it lists.
func (c *Copier) Copy(ctx context.Context, src, dst string) (v1.Hash, error) {
	srcRef, err := name.ParseReference(src, c.nameOpts...)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("parse source %q: %w", src, err)
	}
	target, wantDigest, err := c.destination(dst)
	if err != nil {
		return v1.Hash{}, err
	}
	if c.opts.Creator != nil {
		if err := c.opts.Creator.EnsureRepository(ctx, target.Context()); err != nil {
			return v1.Hash{}, fmt.Errorf("copy %s to %s: %w", src, dst, err)
		}
	}

	opts := c.remoteOptions(ctx)
	desc, err := remote.Get(srcRef, opts...)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("fetch source %s: %w", src, err)
	}
	if wantDigest != "" && desc.Digest.String() != wantDigest {
		return v1.Hash{}, fmt.Errorf("copy %s to %s: source has digest %s, destination names %s", src, dst, desc.Digest, wantDigest)
	}

	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return v1.Hash{}, fmt.Errorf("read index %s: %w", src, err)
		}
		if err := remote.WriteIndex(target, idx, opts...); err != nil {
			return v1.Hash{}, fmt.Errorf("write index %s to %s: %w", src, dst, err)
		}
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return v1.Hash{}, fmt.Errorf("read image %s: %w", src, err)
		}
		if err := remote.Write(target, img, opts...); err != nil {
			return v1.Hash{}, fmt.Errorf("write image %s to %s: %w", src, dst, err)
		}
	default:
		// Schema 1 and unknown artifacts: neither ECR nor kubelet would use them.
		return v1.Hash{}, fmt.Errorf("copy %s: unsupported manifest media type %q", src, desc.MediaType)
	}
	return desc.Digest, nil
}

// destination parses dst and returns where to push (its tag when it has
// one, else its digest) and the digest it pins, if any.
func (c *Copier) destination(dst string) (name.Reference, string, error) {
	ref, err := name.ParseReference(dst, c.nameOpts...)
	if err != nil {
		return nil, "", fmt.Errorf("parse destination %q: %w", dst, err)
	}
	d, ok := ref.(name.Digest)
	if !ok {
		return ref, "", nil
	}
	// The parser drops a tag written before the digest; look for it in the base.
	base := strings.TrimSuffix(dst, "@"+d.DigestStr())
	if t, err := name.NewTag(base, append([]name.Option{name.WithDefaultTag("")}, c.nameOpts...)...); err == nil && t.TagStr() != "" {
		return t, d.DigestStr(), nil
	}
	return d, d.DigestStr(), nil
}

// Start copies synchronously; the Status it returns is Done. A failed copy is
// a failed attempt (Done, not Succeeded, with the reason). Two cases are
// errors instead, because no attempt was really made: a cancelled or expired
// ctx, and a retryable error (ECR throttling while creating the repository or
// fetching the registry token).
func (c *Copier) Start(ctx context.Context, req replicate.Request) (replicate.Status, error) {
	digest, err := c.Copy(ctx, req.Source, req.Destination)
	if err != nil {
		if ctx.Err() != nil {
			return replicate.Status{}, fmt.Errorf("copy %s: %w", req.Source, errors.Join(context.Cause(ctx), err))
		}
		if replicate.IsRetryable(err) {
			return replicate.Status{}, err
		}
		return replicate.Status{Done: true, Message: err.Error()}, nil
	}
	return replicate.Status{Done: true, Succeeded: true, Message: fmt.Sprintf("copied %s", digest)}, nil
}

// Poll exists for the Backend interface. A copy ends within Start, so an
// attempt left Replicating (the process stopped mid-copy) did not finish: it
// is reported failed and a new attempt copies again.
func (c *Copier) Poll(_ context.Context, id string) (replicate.Status, error) {
	return replicate.Status{ID: id, Done: true, Message: "copy was interrupted before it finished"}, nil
}
