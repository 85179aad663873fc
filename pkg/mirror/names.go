package mirror

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

const (
	// replicationNameMax keeps names usable as label values too (63), well
	// inside the 253 a DNS-1123 subdomain allows.
	replicationNameMax = 63
	// replicationHashLen hex characters (40 bits) tell destinations apart.
	replicationHashLen = 10
)

// ReplicationName is the ImageReplication name for a destination image: a
// readable part plus a hash of the whole destination, so every Pod asking for
// the same destination lands on the same resource. The result is a DNS-1123
// label (hence also a subdomain) of at most 63 characters, so it can be a label
// value too. The readable part is the repository path and tag or digest
// without the registry (the same for every destination); when that is too long,
// the last path component and the identifier, cut to length.
func ReplicationName(destination string) string {
	sum := sha256.Sum256([]byte(destination))
	hash := hex.EncodeToString(sum[:])[:replicationHashLen]
	limit := replicationNameMax - 1 - replicationHashLen

	readable := sanitize(destination)
	if p, err := split(destination); err == nil {
		ident := p.tag + "-" + p.digest
		readable = sanitize(p.repository + "-" + ident)
		if len(readable) > limit {
			last := p.repository[strings.LastIndex(p.repository, "/")+1:]
			readable = sanitize(last + "-" + ident)
		}
	}
	if len(readable) > limit {
		readable = strings.TrimRight(readable[:limit], "-")
	}
	if readable == "" {
		return "image-" + hash
	}
	return readable + "-" + hash
}

// sanitize lower-cases s and turns every run of characters outside [a-z0-9] into one "-".
func sanitize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
			continue
		}
		if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimRight(b.String(), "-")
}
