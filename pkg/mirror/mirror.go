// Package mirror computes where an image lives in the private mirror
// (SPEC §3.5). It is pure: no I/O, no clock, no state, so the webhook, the
// offline tools, the tests and the benchmarks all run the same code.
package mirror

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Backend is the image-replicator's replication backend; it decides what
// happens to a digest reference.
type Backend string

const (
	// BackendCodeBuild re-pushes the image with docker in CodeBuild. The pushed
	// manifest may differ from the source, so a digest cannot be kept.
	BackendCodeBuild Backend = "codebuild"
	// BackendCopy copies manifests and blobs byte for byte, so digests survive.
	BackendCopy Backend = "copy"
)

// ParseBackend parses a --replication-backend value; "" means the default, codebuild.
func ParseBackend(s string) (Backend, error) {
	switch Backend(strings.ToLower(strings.TrimSpace(s))) {
	case "", BackendCodeBuild:
		return BackendCodeBuild, nil
	case BackendCopy:
		return BackendCopy, nil
	}
	return "", fmt.Errorf("replication backend %q: want %q or %q", s, BackendCodeBuild, BackendCopy)
}

// Policy says where images are mirrored.
type Policy struct {
	// RepoHost is the mirror registry (IMAGE_REPLICATIONS_REPO_HOST), e.g.
	// 123456789012.dkr.ecr.us-west-2.amazonaws.com.
	RepoHost string
	// RepoPrefix is the repository path every mirrored image goes under
	// (IMAGE_REPLICATIONS_REPO_PREFIX); may be empty.
	RepoPrefix string
	// ReplicateExternalRepos also mirrors images from other ECR registries.
	ReplicateExternalRepos bool
	// Backend chooses the digest rule; "" means BackendCodeBuild.
	Backend Backend
}

// Validate reports the first thing wrong with p.
func (p Policy) Validate() error {
	if p.RepoHost == "" {
		return fmt.Errorf("repo host is empty")
	}
	if p.RepoHost != strings.ToLower(p.RepoHost) {
		return fmt.Errorf("repo host %q: must be lower case", p.RepoHost)
	}
	if _, err := name.NewRegistry(p.RepoHost, name.StrictValidation); err != nil {
		return fmt.Errorf("repo host %q: %w", p.RepoHost, err)
	}
	if prefix := strings.Trim(p.RepoPrefix, "/"); prefix != "" {
		if err := validateRepository(prefix, IsECRHost(p.RepoHost)); err != nil {
			return fmt.Errorf("repo prefix %q: %w", p.RepoPrefix, err)
		}
	}
	if _, err := ParseBackend(string(p.Backend)); err != nil {
		return err
	}
	return nil
}

// Desired returns the image a container should run instead of image, per
// SPEC §3.5:
//
//   - an image whose registry is RepoHost is left alone;
//   - another ECR registry's image is left alone unless ReplicateExternalRepos,
//     then it becomes RepoHost/RepoPrefix/<repo>;
//   - public.ecr.aws/<alias>/<path> becomes RepoHost/RepoPrefix/<path>;
//   - anything else becomes RepoHost/RepoPrefix/<image as written>, with a
//     registry's port colon written as "-" and the registry lower-cased
//     (host names are case-insensitive, repository paths are not allowed
//     upper case).
//
// A digest is kept with BackendCopy ("name:tag@sha256:…" keeps both tag and
// digest, which kubelet pulls by digest); with BackendCodeBuild it becomes the
// tag DigestTag(digest), replacing any tag, because the pinned content — not a
// tag that may have moved — is what the Pod asked for.
//
// changed is false when the image stays as it is. An error means the image or
// the policy is invalid, or the mirror reference would be (too long, or a name
// the mirror cannot hold); the caller leaves such an image unchanged.
func Desired(image string, p Policy) (desired string, changed bool, err error) {
	if err := p.Validate(); err != nil {
		return "", false, fmt.Errorf("mirror policy: %w", err)
	}
	src, err := split(image)
	if err != nil {
		return "", false, err
	}
	registry := strings.ToLower(src.registry)
	if registry == p.RepoHost {
		return image, false, nil
	}

	var path string
	switch {
	case ecrHost.MatchString(registry):
		if !p.ReplicateExternalRepos {
			return image, false, nil
		}
		path = src.repository
	case registry == publicECRHost:
		// Drop the alias; an alias-only path (not a real ECR Public image) is kept whole.
		path = src.repository
		if _, rest, ok := strings.Cut(src.repository, "/"); ok {
			path = rest
		}
	case registry == "":
		path = src.repository
	default:
		// A repository path cannot hold ":", so a port's colon becomes "-".
		path = strings.ReplaceAll(registry, ":", "-") + "/" + src.repository
	}

	dst := parts{registry: p.RepoHost, repository: path, tag: src.tag, digest: src.digest}
	if prefix := strings.Trim(p.RepoPrefix, "/"); prefix != "" {
		dst.repository = prefix + "/" + path
	}
	if dst.digest != "" && p.Backend != BackendCopy {
		dst.tag = DigestTag(dst.digest)
		dst.digest = ""
	}
	out := dst.String()
	if err := ValidateReference(out); err != nil {
		return "", false, fmt.Errorf("mirror reference for %q: %w", image, err)
	}
	return out, out != image, nil
}

// DigestTag turns a digest into the tag CodeBuild pushes it under:
// "sha256:<hex>" becomes "sha256-<hex>" (the convention cosign and others use
// for digest-derived tags), cut to the 128-character tag limit — only sha512
// needs the cut, and 121 hex characters still identify the content.
func DigestTag(digest string) string {
	t := strings.Replace(digest, ":", "-", 1)
	if len(t) > tagLengthMax {
		t = t[:tagLengthMax]
	}
	return t
}
