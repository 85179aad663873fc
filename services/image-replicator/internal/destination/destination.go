// Package destination gives the mirror reference of an image for the inventory mode, by the
// image-updater's rules of SPEC §3.5, so a pre-seeded mirror holds exactly the references the
// image-updater later rewrites Pods to.
//
// The image-updater owns the full rules (module services/image-updater, internal/mirror); a
// service module cannot import another's internal packages, so this is the inventory's copy
// of them, held to the same SPEC reference cases by its tests. When that package moves to
// the shared pkg module, this one goes.
package destination

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/ecr"
)

// publicECR is ECR Public, whose first path component is the registry alias.
const publicECR = "public.ecr.aws"

// tagMax is the distribution spec's limit on a tag.
const tagMax = 128

// Policy is where images are mirrored.
type Policy struct {
	// RepoHost is the mirror registry (IMAGE_REPLICATIONS_REPO_HOST).
	RepoHost string
	// RepoPrefix is the repository path under it (IMAGE_REPLICATIONS_REPO_PREFIX).
	RepoPrefix string
	// ReplicateExternalRepos mirrors other accounts' ECR images too.
	ReplicateExternalRepos bool
	// KeepDigests is true for the copy backend; CodeBuild re-pushes, so a digest becomes the
	// tag sha256-<hex>.
	KeepDigests bool
}

// Map returns the mirror reference of image; changed is false when the image stays as it is
// (already in the mirror, or another account's ECR without ReplicateExternalRepos).
func (p Policy) Map(image string) (string, bool, error) {
	host := strings.ToLower(strings.TrimSpace(p.RepoHost))
	if host == "" {
		return "", false, errors.New("no mirror: --repo-host (IMAGE_REPLICATIONS_REPO_HOST) is not set")
	}
	opts := []name.Option{name.WeakValidation, name.WithDefaultRegistry(""), name.WithDefaultTag("")}
	ref, err := name.ParseReference(image, opts...)
	if err != nil {
		return "", false, fmt.Errorf("parse image %q: %w", image, err)
	}
	base, digest := image, ""
	if d, ok := ref.(name.Digest); ok {
		digest = d.DigestStr()
		base = strings.TrimSuffix(image, "@"+digest)
	}
	tagged, err := name.NewTag(base, opts...)
	if err != nil {
		return "", false, fmt.Errorf("parse image %q: %w", image, err)
	}
	tag := tagged.TagStr()
	if tag != "" {
		base = strings.TrimSuffix(base, ":"+tag)
	}
	// The parser decides whether a registry was written; keep its written spelling.
	registry, repo := "", base
	if tagged.Context().RegistryStr() != "" {
		registry, repo, _ = strings.Cut(base, "/")
		registry = strings.ToLower(registry)
	}
	if registry == host {
		return image, false, nil
	}
	path := repo
	switch _, isECR := ecr.ParseHost(registry); {
	case isECR:
		if !p.ReplicateExternalRepos {
			return image, false, nil
		}
	case registry == publicECR:
		if _, rest, ok := strings.Cut(repo, "/"); ok {
			path = rest
		}
	case registry != "":
		path = strings.ReplaceAll(registry, ":", "-") + "/" + repo
	}
	if prefix := strings.Trim(p.RepoPrefix, "/"); prefix != "" {
		path = prefix + "/" + path
	}
	if digest != "" && !p.KeepDigests {
		tag = strings.Replace(digest, ":", "-", 1)
		if len(tag) > tagMax {
			tag = tag[:tagMax]
		}
		digest = ""
	}
	out := host + "/" + path
	if tag != "" {
		out += ":" + tag
	}
	if digest != "" {
		out += "@" + digest
	}
	if _, err := name.ParseReference(out); err != nil {
		return "", false, fmt.Errorf("mirror reference for %q: %w", image, err)
	}
	return out, out != image, nil
}
