package mirror

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

const (
	host = "123456789012.dkr.ecr.us-west-2.amazonaws.com"
	h    = host + "/orbit-dev/"
	dig  = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	dtag = "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	// A sha512 digest: 128 hex characters.
	dig512 = "sha512:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" +
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func policy(backend Backend, external bool) Policy {
	return Policy{RepoHost: host, RepoPrefix: "orbit-dev", ReplicateExternalRepos: external, Backend: backend}
}

func TestDesired(t *testing.T) {
	cb := policy(BackendCodeBuild, false)
	cbExt := policy(BackendCodeBuild, true)
	cp := policy(BackendCopy, false)
	cpExt := policy(BackendCopy, true)
	noPrefix := Policy{RepoHost: host, Backend: BackendCopy}
	plainHost := Policy{RepoHost: "mirror.example.com:5000", RepoPrefix: "team/mirror", Backend: BackendCopy}

	tests := []struct {
		name    string
		image   string
		policy  Policy
		want    string // "" with wantErr
		wantErr bool
	}{
		// SPEC §3.5 reference cases.
		{name: "spec nginx", image: "nginx", policy: cb, want: h + "nginx"},
		{name: "spec nginx tag", image: "nginx:1.19", policy: cb, want: h + "nginx:1.19"},
		{name: "spec quay", image: "quay.io/jetstack/cert-manager-controller:v1.3.2", policy: cb,
			want: h + "quay.io/jetstack/cert-manager-controller:v1.3.2"},
		{name: "spec public ecr", image: "public.ecr.aws/nginx/nginx:latest", policy: cb, want: h + "nginx:latest"},
		{name: "spec other ecr not replicated", image: "602401143452.dkr.ecr.us-east-2.amazonaws.com/eks/coredns:v1.8.0",
			policy: cb, want: "602401143452.dkr.ecr.us-east-2.amazonaws.com/eks/coredns:v1.8.0"},
		{name: "spec other ecr replicated", image: "602401143452.dkr.ecr.us-east-2.amazonaws.com/eks/coredns:v1.8.0",
			policy: cbExt, want: h + "eks/coredns:v1.8.0"},
		{name: "spec already mirrored", image: h + "foo:1", policy: cb, want: h + "foo:1"},

		// Docker Hub, as written.
		{name: "hub user repo", image: "bitnami/redis:7.2", policy: cb, want: h + "bitnami/redis:7.2"},
		{name: "hub library written", image: "library/nginx:1.25", policy: cb, want: h + "library/nginx:1.25"},
		{name: "hub docker.io written", image: "docker.io/library/nginx:1.25", policy: cb, want: h + "docker.io/library/nginx:1.25"},
		{name: "hub docker.io short", image: "docker.io/nginx", policy: cb, want: h + "docker.io/nginx"},
		{name: "hub deep path", image: "a/b/c/d:e", policy: cb, want: h + "a/b/c/d:e"},
		{name: "tag with dots and dashes", image: "nginx:1.25.3-alpine_slim", policy: cb, want: h + "nginx:1.25.3-alpine_slim"},

		// Registries with ports and odd hosts.
		{name: "localhost port", image: "localhost:5000/a:1", policy: cb, want: h + "localhost-5000/a:1"},
		{name: "localhost no port", image: "localhost/a", policy: cb, want: h + "localhost/a"},
		{name: "ip and port", image: "10.1.2.3:5000/team/app:2", policy: cb, want: h + "10.1.2.3-5000/team/app:2"},
		{name: "upper-case host lowered", image: "Quay.IO/x/y:1", policy: cb, want: h + "quay.io/x/y:1"},
		{name: "gcr", image: "gcr.io/distroless/static:nonroot", policy: cb, want: h + "gcr.io/distroless/static:nonroot"},
		{name: "ghcr deep", image: "ghcr.io/org/team/tool:v1", policy: cb, want: h + "ghcr.io/org/team/tool:v1"},
		{name: "ipv6 host cannot be a path", image: "[::1]:5000/a:1", policy: cb, wantErr: true},

		// Public ECR edge cases.
		{name: "public ecr deep path", image: "public.ecr.aws/eks-distro/kubernetes/pause:3.9", policy: cb,
			want: h + "kubernetes/pause:3.9"},
		{name: "public ecr alias only", image: "public.ecr.aws/nginx", policy: cb, want: h + "nginx"},

		// Other ECR registries.
		{name: "other ecr digest not replicated", image: "602401143452.dkr.ecr.us-east-2.amazonaws.com/eks/coredns@" + dig,
			policy: cp, want: "602401143452.dkr.ecr.us-east-2.amazonaws.com/eks/coredns@" + dig},
		{name: "other ecr replicated copy digest", image: "602401143452.dkr.ecr.us-east-2.amazonaws.com/eks/coredns@" + dig,
			policy: cpExt, want: h + "eks/coredns@" + dig},
		{name: "same account other region", image: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1",
			policy: cbExt, want: h + "app:1"},
		{name: "china ecr replicated", image: "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app:1",
			policy: cbExt, want: h + "app:1"},
		{name: "fips ecr unchanged", image: "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com/app:1",
			policy: cb, want: "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com/app:1"},
		{name: "mirror host any prefix unchanged", image: host + "/other/thing@" + dig, policy: cb, want: host + "/other/thing@" + dig},
		{name: "mirror host upper case unchanged", image: strings.ToUpper(host[:12]) + host[12:] + "/x:1", policy: cb,
			want: strings.ToUpper(host[:12]) + host[12:] + "/x:1"},

		// Digests with the copy backend: kept.
		{name: "copy digest", image: "nginx@" + dig, policy: cp, want: h + "nginx@" + dig},
		{name: "copy tag and digest", image: "nginx:1.25@" + dig, policy: cp, want: h + "nginx:1.25@" + dig},
		{name: "copy registry port digest", image: "localhost:5000/a@" + dig, policy: cp, want: h + "localhost-5000/a@" + dig},
		{name: "copy sha512", image: "quay.io/x/y@" + dig512, policy: cp, want: h + "quay.io/x/y@" + dig512},
		{name: "copy public ecr tag digest", image: "public.ecr.aws/nginx/nginx:1@" + dig, policy: cp, want: h + "nginx:1@" + dig},

		// Digests with CodeBuild: become a tag.
		{name: "codebuild digest", image: "nginx@" + dig, policy: cb, want: h + "nginx:" + dtag},
		{name: "codebuild tag and digest", image: "nginx:1.25@" + dig, policy: cb, want: h + "nginx:" + dtag},
		{name: "codebuild quay digest", image: "quay.io/x/y@" + dig, policy: cb, want: h + "quay.io/x/y:" + dtag},
		{name: "codebuild sha512 truncated", image: "quay.io/x/y@" + dig512, policy: cb,
			want: h + "quay.io/x/y:" + ("sha512-" + dig512[len("sha512:"):])[:128]},
		{name: "default backend is codebuild", image: "nginx@" + dig, policy: Policy{RepoHost: host, RepoPrefix: "orbit-dev"},
			want: h + "nginx:" + dtag},

		// Prefix and host variants.
		{name: "no prefix", image: "nginx:1", policy: noPrefix, want: host + "/nginx:1"},
		{name: "prefix slashes trimmed", image: "nginx:1", policy: Policy{RepoHost: host, RepoPrefix: "/orbit-dev/", Backend: BackendCopy},
			want: h + "nginx:1"},
		{name: "non-ecr mirror", image: "quay.io/x/y:1", policy: plainHost, want: "mirror.example.com:5000/team/mirror/quay.io/x/y:1"},
		{name: "non-ecr mirror allows double underscore", image: "a__b/c:1", policy: plainHost, want: "mirror.example.com:5000/team/mirror/a__b/c:1"},

		// Invalid input or unmirrorable output: error, caller leaves the image.
		{name: "empty", image: "", policy: cb, wantErr: true},
		{name: "upper-case repository", image: "Nginx:1", policy: cb, wantErr: true},
		{name: "url scheme", image: "https://quay.io/x/y", policy: cb, wantErr: true},
		{name: "bad digest", image: "nginx@sha256:abc", policy: cp, wantErr: true},
		{name: "empty tag", image: "nginx:", policy: cb, wantErr: true},
		{name: "space", image: "nginx :1", policy: cb, wantErr: true},
		{name: "double slash", image: "quay.io/a//b:1", policy: cb, wantErr: true},
		{name: "tag starts with dot", image: "nginx:.x", policy: cb, wantErr: true},
		{name: "double dash not allowed in ecr", image: "foo--bar:1", policy: cb, wantErr: true},
		{name: "too long for the mirror", image: "quay.io/" + strings.Repeat("a", 200) + ":1", policy: cb, wantErr: true},
		{name: "invalid policy host", image: "nginx", policy: Policy{RepoHost: "", Backend: BackendCopy}, wantErr: true},
		{name: "invalid policy prefix", image: "nginx", policy: Policy{RepoHost: host, RepoPrefix: "Orbit", Backend: BackendCopy}, wantErr: true},
		{name: "invalid policy backend", image: "nginx", policy: Policy{RepoHost: host, Backend: "skopeo"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed, err := Desired(tt.image, tt.policy)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Desired(%q) = %q, want an error", tt.image, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Desired(%q): %v", tt.image, err)
			}
			if got != tt.want {
				t.Fatalf("Desired(%q)\n got %q\nwant %q", tt.image, got, tt.want)
			}
			if changed != (tt.want != tt.image) {
				t.Errorf("Desired(%q) changed = %v, want %v", tt.image, changed, !changed)
			}
			if !changed {
				return
			}
			if err := ValidateReference(got); err != nil {
				t.Errorf("output is not a valid reference: %v", err)
			}
			if _, err := name.ParseReference(got, name.WeakValidation); err != nil {
				t.Errorf("go-containerregistry does not parse the output: %v", err)
			}
			// A rewritten image is under the mirror, so rewriting again changes nothing.
			again, changedAgain, err := Desired(got, tt.policy)
			if err != nil || changedAgain || again != got {
				t.Errorf("Desired(Desired(x)) = %q, %v, %v; want %q unchanged", again, changedAgain, err, got)
			}
		})
	}
}

func TestDesiredKeepsDigestForCopy(t *testing.T) {
	// The copy backend's whole point: the mirror reference pins the same content.
	got, _, err := Desired("quay.io/x/y:1@"+dig, policy(BackendCopy, false))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(got)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := ref.(name.Digest)
	if !ok || d.DigestStr() != dig {
		t.Fatalf("%q parses as %T %q, want the digest %s", got, ref, ref.Identifier(), dig)
	}
}

func TestParseBackend(t *testing.T) {
	for in, want := range map[string]Backend{"": BackendCodeBuild, "codebuild": BackendCodeBuild, "COPY": BackendCopy, " copy ": BackendCopy} {
		got, err := ParseBackend(in)
		if err != nil || got != want {
			t.Errorf("ParseBackend(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseBackend("docker"); err == nil {
		t.Error("ParseBackend(docker) did not fail")
	}
}

func TestDigestTag(t *testing.T) {
	if got := DigestTag(dig); got != dtag {
		t.Errorf("DigestTag(%s) = %s", dig, got)
	}
	if got := DigestTag(dig512); len(got) != 128 || !strings.HasPrefix(got, "sha512-0123") {
		t.Errorf("DigestTag(sha512) = %s (%d characters)", got, len(got))
	}
}

func TestValidateReference(t *testing.T) {
	good := []string{
		"quay.io/x/y", "quay.io/x/y:1", "localhost:5000/a@" + dig, host + "/a/b:c@" + dig,
		"mirror.example.com/a__b/c---d:1",
	}
	bad := []string{
		"nginx",                               // no registry
		"quay.io/x/y:-1",                      // tag starts with "-"
		host + "/a__b:1",                      // ECR forbids "__"
		"quay.io/-x/y",                        // component starts with "-"
		"quay.io/x./y",                        // component ends with "."
		"quay.io/" + strings.Repeat("x", 250), // too long
	}
	for _, r := range good {
		if err := ValidateReference(r); err != nil {
			t.Errorf("ValidateReference(%q): %v", r, err)
		}
	}
	for _, r := range bad {
		if err := ValidateReference(r); err == nil {
			t.Errorf("ValidateReference(%q) succeeded, want an error", r)
		}
	}
}
