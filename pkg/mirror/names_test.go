package mirror

import (
	"regexp"
	"strings"
	"testing"
)

var dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func TestReplicationName(t *testing.T) {
	long := h + "quay.io/some-organisation/" + strings.Repeat("very-long-component/", 8) + "image-name:v1.2.3"
	tests := []struct {
		dst        string
		wantPrefix string
	}{
		{dst: h + "nginx:1.19", wantPrefix: "orbit-dev-nginx-1-19-"},
		{dst: h + "quay.io/jetstack/cert-manager-controller:v1.3.2", wantPrefix: "cert-manager-controller-v1-3-2-"},
		{dst: h + "quay.io/jetstack/cert-manager:v1.3.2", wantPrefix: "orbit-dev-quay-io-jetstack-cert-manager-v1-3-2-"},
		{dst: h + "nginx@" + dig, wantPrefix: "nginx-sha256-0123456789abcdef"},
		{dst: h + "nginx:1@" + dig, wantPrefix: "nginx-1-sha256-0123456789abcdef"},
		{dst: long, wantPrefix: "image-name-v1-2-3-"},
		{dst: "___", wantPrefix: "image-"},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		got := ReplicationName(tt.dst)
		if len(got) > 63 || !dns1123Label.MatchString(got) {
			t.Errorf("ReplicationName(%q) = %q: not a DNS-1123 label of at most 63 characters", tt.dst, got)
		}
		if !strings.HasPrefix(got, tt.wantPrefix) {
			t.Errorf("ReplicationName(%q) = %q, want prefix %q", tt.dst, got, tt.wantPrefix)
		}
		if got != ReplicationName(tt.dst) {
			t.Errorf("ReplicationName(%q) is not deterministic", tt.dst)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("%q and %q share the name %q", other, tt.dst, got)
		}
		seen[got] = tt.dst
	}
	// Destinations differing only in punctuation still get different names.
	if ReplicationName(h+"a-b:1") == ReplicationName(h+"a.b:1") {
		t.Error("a-b and a.b share a name")
	}
}

func TestExclusions(t *testing.T) {
	e, err := NewExclusions(
		[]string{"kube-system", "kube-*", "re:team-[0-9]+"},
		[]string{"quay.io/*", "re:.*@sha256:.*", "index.docker.io/library/busybox*", "registry.k8s.io/pause:?.?"},
	)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ns, image string
		want      bool
	}{
		{"kube-system", "nginx", true},
		{"kube-public", "nginx", true},
		{"team-42", "nginx", true},
		{"team-x", "nginx", false},
		{"prod", "quay.io/x/y:1", true},
		{"prod", "quay.io", false}, // a repository named quay.io on Docker Hub
		{"prod", "ghcr.io/x/y@" + dig, true},
		{"prod", "busybox:1.36", true}, // matched through index.docker.io/library/busybox:1.36
		{"prod", "docker.io/library/busybox", true},
		{"prod", "registry.k8s.io/pause:3.9", true},
		{"prod", "registry.k8s.io/pause:3.10", false},
		{"prod", "nginx", false},
		{"prod", "not a reference", false},
	}
	for _, tt := range tests {
		if got := e.Excluded(tt.ns, tt.image); got != tt.want {
			t.Errorf("Excluded(%q, %q) = %v, want %v", tt.ns, tt.image, got, tt.want)
		}
	}
	var none *Exclusions
	if none.Excluded("kube-system", "nginx") {
		t.Error("nil Exclusions excluded something")
	}
	if _, err := NewExclusions(nil, []string{"re:("}); err == nil {
		t.Error("invalid regex accepted")
	}
	if _, err := NewExclusions([]string{" "}, nil); err == nil {
		t.Error("empty pattern accepted")
	}
}
