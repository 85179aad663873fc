package mirror

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// regexPrefix marks a pattern as a regular expression rather than a glob.
const regexPrefix = "re:"

// Exclusions says which namespaces and images are never rewritten. The zero
// value and a nil *Exclusions exclude nothing.
type Exclusions struct {
	namespaces []*regexp.Regexp
	images     []*regexp.Regexp
}

// NewExclusions compiles namespace and image patterns. A pattern is a glob in
// which "*" matches any run of characters ("/" and ":" included, so
// "quay.io/*" covers everything on quay.io) and "?" one character, or, with
// the prefix "re:", an RE2 regular expression; either must match the whole
// string. Image patterns are tried against the image as written and against
// its fully qualified form (nginx → index.docker.io/library/nginx:latest), so
// "index.docker.io/library/*" excludes Docker Hub's official images however
// they are written.
func NewExclusions(namespaces, images []string) (*Exclusions, error) {
	e := &Exclusions{}
	for _, p := range namespaces {
		re, err := compilePattern(p)
		if err != nil {
			return nil, fmt.Errorf("namespace exclusion %q: %w", p, err)
		}
		e.namespaces = append(e.namespaces, re)
	}
	for _, p := range images {
		re, err := compilePattern(p)
		if err != nil {
			return nil, fmt.Errorf("image exclusion %q: %w", p, err)
		}
		e.images = append(e.images, re)
	}
	return e, nil
}

func compilePattern(p string) (*regexp.Regexp, error) {
	p = strings.TrimSpace(p)
	if p == "" {
		return nil, fmt.Errorf("empty pattern")
	}
	if expr, ok := strings.CutPrefix(p, regexPrefix); ok {
		return regexp.Compile("^(?:" + expr + ")$")
	}
	var b strings.Builder
	b.WriteString("^")
	for _, r := range p {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// Excluded reports whether an image in namespace must be left as it is.
func (e *Exclusions) Excluded(namespace, image string) bool {
	if e == nil {
		return false
	}
	for _, re := range e.namespaces {
		if re.MatchString(namespace) {
			return true
		}
	}
	if len(e.images) == 0 {
		return false
	}
	full := ""
	if ref, err := name.ParseReference(image, name.WeakValidation); err == nil {
		full = ref.Name()
	}
	for _, re := range e.images {
		if re.MatchString(image) || (full != "" && re.MatchString(full)) {
			return true
		}
	}
	return false
}
