package oci

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestCheckerHas(t *testing.T) {
	reg := httptest.NewServer(registry.New())
	t.Cleanup(reg.Close)
	host := strings.TrimPrefix(reg.URL, "http://")

	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/orbit-dev/app:1"
	parsed, _ := name.ParseReference(ref)
	if err := remote.Write(parsed, img, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	digest, _ := img.Digest()

	c := NewChecker(false)
	tests := []struct {
		ref  string
		want bool
	}{
		{ref, true},
		{host + "/orbit-dev/app@" + digest.String(), true},
		{host + "/orbit-dev/app:2", false},
		{host + "/orbit-dev/missing:1", false},
		{host + "/orbit-dev/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", false},
	}
	for _, tt := range tests {
		got, err := c.Has(t.Context(), tt.ref)
		if err != nil {
			t.Errorf("Has(%s): %v", tt.ref, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Has(%s) = %v, want %v", tt.ref, got, tt.want)
		}
	}
}

func TestCheckerErrors(t *testing.T) {
	for _, code := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusInternalServerError} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/" {
				w.WriteHeader(http.StatusOK)
				return
			}
			w.WriteHeader(code)
		}))
		t.Cleanup(srv.Close)
		// No retries, so a 500 answers at once.
		c := NewChecker(false, remote.WithRetryStatusCodes())
		ref := strings.TrimPrefix(srv.URL, "http://") + "/x/y:1"
		if got, err := c.Has(t.Context(), ref); err == nil {
			t.Errorf("HTTP %d: Has = %v, want an error", code, got)
		}
	}
	if _, err := NewChecker(false).Has(t.Context(), "NOT/valid"); err == nil {
		t.Error("Has accepted an invalid reference")
	}
}

func TestDockerConfigKeychain(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	config := `{"auths": {
		"https://index.docker.io/v1/": {"auth": "` + b64("hubuser:hubpass") + `"},
		"quay.io": {"username": "quser", "password": "qpass"},
		"http://registry.internal:5000/v2/": {"auth": "` + b64("iuser:ipass") + `"},
		"ghcr.io": {"identitytoken": "tok"}
	}, "credsStore": "desktop"}`
	legacy := `{"quay.io": {"auth": "` + b64("quser:qpass") + `", "email": "x@example.com"}}`

	tests := []struct {
		name    string
		config  string
		ref     string
		want    authn.AuthConfig // zero: anonymous
		wantErr bool
	}{
		{name: "docker hub short name", config: config, ref: "nginx", want: authn.AuthConfig{Username: "hubuser", Password: "hubpass"}},
		{name: "docker hub written out", config: config, ref: "docker.io/library/nginx", want: authn.AuthConfig{Username: "hubuser", Password: "hubpass"}},
		{name: "plain host key", config: config, ref: "quay.io/x/y", want: authn.AuthConfig{Username: "quser", Password: "qpass"}},
		{name: "URL key with port and path", config: config, ref: "registry.internal:5000/a", want: authn.AuthConfig{Username: "iuser", Password: "ipass"}},
		{name: "identity token", config: config, ref: "ghcr.io/o/r", want: authn.AuthConfig{IdentityToken: "tok"}},
		{name: "unknown registry", config: config, ref: "gcr.io/x/y"},
		{name: "legacy dockercfg", config: legacy, ref: "quay.io/x/y", want: authn.AuthConfig{Username: "quser", Password: "qpass"}},
		{name: "empty", config: "", ref: "quay.io/x/y"},
		{name: "not JSON", config: "{", wantErr: true},
		{name: "bad auth field", config: `{"auths": {"quay.io": {"auth": "!!!"}}}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := NewDockerConfigKeychain([]byte(tt.config))
			if tt.wantErr {
				if err == nil {
					t.Fatal("NewDockerConfigKeychain accepted it")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ref, err := name.ParseReference(tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			auth, err := k.Resolve(ref.Context())
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == (authn.AuthConfig{}) {
				if auth != authn.Anonymous {
					t.Errorf("Resolve(%s) = %v, want anonymous", tt.ref, auth)
				}
				return
			}
			got, err := auth.Authorization()
			if err != nil {
				t.Fatal(err)
			}
			if got.Username != tt.want.Username || got.Password != tt.want.Password || got.IdentityToken != tt.want.IdentityToken {
				t.Errorf("Resolve(%s) = %+v, want %+v", tt.ref, got, tt.want)
			}
		})
	}
}
