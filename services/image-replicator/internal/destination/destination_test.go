package destination

import "testing"

const (
	host = "123456789012.dkr.ecr.us-west-2.amazonaws.com"
	h    = host + "/orbit-dev/"
	dig  = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// The reference cases of SPEC §3.6 and the digest rules of §3.5.
func TestMap(t *testing.T) {
	p := Policy{RepoHost: host, RepoPrefix: "orbit-dev"}
	ext := Policy{RepoHost: host, RepoPrefix: "orbit-dev", ReplicateExternalRepos: true}
	keep := Policy{RepoHost: host, RepoPrefix: "orbit-dev", KeepDigests: true}
	tests := []struct {
		image  string
		policy Policy
		want   string
	}{
		{"nginx", p, h + "nginx"},
		{"nginx:1.19", p, h + "nginx:1.19"},
		{"quay.io/jetstack/cert-manager-controller:v1.3.2", p, h + "quay.io/jetstack/cert-manager-controller:v1.3.2"},
		{"public.ecr.aws/nginx/nginx:latest", p, h + "nginx:latest"},
		{"602401143452.dkr.ecr.us-east-2.amazonaws.com/eks/coredns:v1.8.0", p, "602401143452.dkr.ecr.us-east-2.amazonaws.com/eks/coredns:v1.8.0"},
		{"602401143452.dkr.ecr.us-east-2.amazonaws.com/eks/coredns:v1.8.0", ext, h + "eks/coredns:v1.8.0"},
		{h + "foo:1", p, h + "foo:1"},
		{"localhost:5000/a:1", p, h + "localhost-5000/a:1"},
		{"docker.io/library/nginx:1.25", p, h + "docker.io/library/nginx:1.25"},
		{"nginx@" + dig, p, h + "nginx:sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		{"nginx:1.25@" + dig, p, h + "nginx:sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		{"nginx:1.25@" + dig, keep, h + "nginx:1.25@" + dig},
		{"Quay.IO/x/y", p, h + "quay.io/x/y"},
		{"nginx", Policy{RepoHost: host}, host + "/nginx"},
	}
	for _, tt := range tests {
		got, changed, err := tt.policy.Map(tt.image)
		if err != nil {
			t.Errorf("Map(%q): %v", tt.image, err)
			continue
		}
		if got != tt.want || changed != (tt.want != tt.image) {
			t.Errorf("Map(%q) = %q, %v; want %q", tt.image, got, changed, tt.want)
		}
	}
	for _, bad := range []string{"", "UPPER/case:x", "a@b"} {
		if _, _, err := p.Map(bad); err == nil {
			t.Errorf("Map(%q) succeeded", bad)
		}
	}
	if _, _, err := (Policy{}).Map("nginx"); err == nil {
		t.Error("Map without a repo host succeeded")
	}
}
