package mirror

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Limits and grammars of the Docker/OCI distribution reference, which is what
// kubelet, containerd and the registries apply. go-containerregistry's parser is
// more lenient (it accepts "a//b", "-x" or a tag starting with "."), so a
// reference we emit is held to these as well.
const (
	// nameTotalLengthMax is the limit on registry + "/" + repository.
	nameTotalLengthMax = 255
	// tagLengthMax is the limit on a tag.
	tagLengthMax = 128
)

var (
	// One repository path component of the distribution grammar.
	pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	// ECR is stricter: a single separator between alphanumeric runs.
	ecrPathComponent = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`)
	tagPattern       = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	// ecrHost matches a private ECR registry: <account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn].
	ecrHost = regexp.MustCompile(`^[0-9]{12}\.dkr\.ecr(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?$`)
)

// publicECRHost is ECR Public, whose first path component is the registry alias.
const publicECRHost = "public.ecr.aws"

// parts is an image reference split the way it was written.
type parts struct {
	// registry as written ("" when the reference names none, i.e. Docker Hub
	// by default); "docker.io" stays "docker.io".
	registry string
	// repository as written, without Docker Hub's implicit "library/".
	repository string
	tag        string // "" when none was written
	digest     string // "" when none was written
}

// split parses image with go-containerregistry's parser and returns its parts
// as written. The parser decides what is registry, tag and digest; the written
// text is then kept rather than the parser's normalised form, because the
// mirror path is "the image as written" (nginx, not index.docker.io/library/nginx).
func split(image string) (parts, error) {
	// An empty default registry and tag let us see what was actually written.
	opts := []name.Option{name.WeakValidation, name.WithDefaultRegistry(""), name.WithDefaultTag("")}
	ref, err := name.ParseReference(image, opts...)
	if err != nil {
		return parts{}, fmt.Errorf("parse image reference %q: %w", image, err)
	}
	var p parts
	base := image
	if d, ok := ref.(name.Digest); ok {
		p.digest = d.DigestStr()
		base = strings.TrimSuffix(image, "@"+p.digest)
		// NewDigest drops a tag written before the digest; parse the base again to keep it.
		t, err := name.NewTag(base, opts...)
		if err != nil {
			return parts{}, fmt.Errorf("parse image reference %q: %w", image, err)
		}
		p.tag = t.TagStr()
		ref = t
	} else {
		p.tag = ref.Identifier()
	}
	if p.tag != "" {
		base = strings.TrimSuffix(base, ":"+p.tag)
	}
	repo := ref.Context()
	if repo.RegistryStr() == "" {
		p.repository = base
	} else {
		// The parser split on the first "/" to find the registry; keep its written spelling.
		p.registry, p.repository, _ = strings.Cut(base, "/")
	}
	if p.repository == "" || strings.Contains(p.repository, ":") {
		// Unreachable with the parser's rules; guards the string handling above.
		return parts{}, fmt.Errorf("parse image reference %q: unexpected repository %q", image, p.repository)
	}
	return p, nil
}

// String joins the parts into a reference.
func (p parts) String() string {
	var b strings.Builder
	if p.registry != "" {
		b.WriteString(p.registry)
		b.WriteByte('/')
	}
	b.WriteString(p.repository)
	if p.tag != "" {
		b.WriteByte(':')
		b.WriteString(p.tag)
	}
	if p.digest != "" {
		b.WriteByte('@')
		b.WriteString(p.digest)
	}
	return b.String()
}

// ValidateReference reports whether ref is a fully qualified reference
// (explicit registry) that go-containerregistry parses and that also meets the
// distribution grammar kubelet and registries enforce; for an ECR registry the
// stricter ECR repository grammar applies too.
func ValidateReference(ref string) error {
	p, err := split(ref)
	if err != nil {
		return err
	}
	if p.registry == "" {
		return fmt.Errorf("reference %q: no registry", ref)
	}
	if _, err := name.NewRegistry(p.registry, name.StrictValidation); err != nil {
		return fmt.Errorf("reference %q: registry: %w", ref, err)
	}
	if l := len(p.registry) + 1 + len(p.repository); l > nameTotalLengthMax {
		return fmt.Errorf("reference %q: name is %d characters, longer than %d", ref, l, nameTotalLengthMax)
	}
	if err := validateRepository(p.repository, ecrHost.MatchString(strings.ToLower(p.registry))); err != nil {
		return fmt.Errorf("reference %q: %w", ref, err)
	}
	if p.tag != "" && !tagPattern.MatchString(p.tag) {
		return fmt.Errorf("reference %q: invalid tag %q", ref, p.tag)
	}
	// The parser already checked the digest's algorithm and encoding.
	return nil
}

func validateRepository(repo string, ecr bool) error {
	re := pathComponent
	if ecr {
		re = ecrPathComponent
	}
	for c := range strings.SplitSeq(repo, "/") {
		if !re.MatchString(c) {
			return fmt.Errorf("invalid repository path component %q", c)
		}
	}
	return nil
}

// IsECRHost reports whether host is a private ECR registry host.
func IsECRHost(host string) bool {
	return ecrHost.MatchString(strings.ToLower(host))
}
