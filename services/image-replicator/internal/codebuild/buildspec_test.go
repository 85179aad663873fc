package codebuild

import (
	"strings"
	"testing"

	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/replicate"
)

func TestBuildspecSourceLogins(t *testing.T) {
	opts := Options{EnvTag: "orbit-dev", SourceLogins: map[string]string{
		"quay.io":   "arn:aws:secretsmanager:us-west-2:123456789012:secret:quay-abc",
		"docker.io": "dockerhub-login",
	}}
	tests := []struct {
		name        string
		src         string
		wantLogin   string // a pre_build command that must be there, "" for none beyond the mirror's
		wantSecrets map[string]string
		wantVars    map[string]string
	}{
		{
			name: "other account's ECR logs in with the build role", src: "602401143452.dkr.ecr.us-east-2.amazonaws.com/eks/coredns:v1.8.0",
			wantLogin: `aws ecr get-login-password --region "$SOURCE_REGION" | docker login --username AWS --password-stdin "$SOURCE_REGISTRY"`,
			wantVars:  map[string]string{"SOURCE_REGION": "us-east-2", "SOURCE_REGISTRY": "602401143452.dkr.ecr.us-east-2.amazonaws.com"},
		},
		{
			name: "registry with a secret", src: "quay.io/org/private:1",
			wantLogin:   `printf '%s' "$SOURCE_PASSWORD" | docker login --username "$SOURCE_USERNAME" --password-stdin "$SOURCE_REGISTRY"`,
			wantSecrets: map[string]string{"SOURCE_USERNAME": "arn:aws:secretsmanager:us-west-2:123456789012:secret:quay-abc:username", "SOURCE_PASSWORD": "arn:aws:secretsmanager:us-west-2:123456789012:secret:quay-abc:password"},
		},
		{
			name: "docker hub short name uses the docker.io secret", src: "bitnami/redis:7",
			wantLogin:   `docker login --username "$SOURCE_USERNAME"`,
			wantSecrets: map[string]string{"SOURCE_USERNAME": "dockerhub-login:username", "SOURCE_PASSWORD": "dockerhub-login:password"},
			wantVars:    map[string]string{"SOURCE_REGISTRY": "docker.io"},
		},
		{name: "public registry without a secret", src: "ghcr.io/org/tool:1"},
		{name: "public ECR is pulled anonymously", src: "public.ecr.aws/nginx/nginx:latest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Buildspec(replicate.Request{Source: tt.src, Destination: mirrorHost + "/orbit-dev/x:1"}, opts)
			if err != nil {
				t.Fatal(err)
			}
			spec := parseBuildspec(t, s)
			pre := spec.Phases["pre_build"].Commands
			wantLen := 2
			if tt.wantLogin != "" {
				wantLen = 3
				if !strings.Contains(pre[1], tt.wantLogin) {
					t.Errorf("source login = %q, want it to contain %q", pre[1], tt.wantLogin)
				}
			}
			if len(pre) != wantLen {
				t.Errorf("pre_build has %d commands, want %d: %q", len(pre), wantLen, pre)
			}
			if len(spec.Env.SecretsManager) != len(tt.wantSecrets) {
				t.Errorf("secrets-manager = %v, want %v", spec.Env.SecretsManager, tt.wantSecrets)
			}
			for k, v := range tt.wantSecrets {
				if spec.Env.SecretsManager[k] != v {
					t.Errorf("secrets-manager %s = %q, want %q", k, spec.Env.SecretsManager[k], v)
				}
			}
			for k, v := range tt.wantVars {
				if spec.Env.Variables[k] != v {
					t.Errorf("variable %s = %q, want %q", k, spec.Env.Variables[k], v)
				}
			}
			for k, v := range spec.Env.Variables {
				if strings.Contains(strings.ToLower(k), "password") || strings.Contains(v, "secret:") && !strings.Contains(k, "SOURCE_IMAGE") {
					t.Errorf("a credential reached a plain variable: %s=%s", k, v)
				}
			}
		})
	}
}

func TestBuildspecRefusals(t *testing.T) {
	opts := Options{Project: "p"}
	for _, req := range []replicate.Request{
		{Source: "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			Destination: mirrorHost + "/orbit-dev/nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		{Source: "nginx", Destination: "registry.example.com/orbit-dev/nginx"},
		{Source: "Not A Reference", Destination: mirrorHost + "/orbit-dev/nginx"},
		{Source: "nginx", Destination: ""},
	} {
		if _, err := Buildspec(req, opts); err == nil {
			t.Errorf("Buildspec(%+v) accepted", req)
		}
	}
}

func TestBuildspecQuotesValues(t *testing.T) {
	// A value YAML would otherwise read as something else comes back intact.
	s, err := Buildspec(replicate.Request{Source: "nginx:1.19", Destination: mirrorHost + "/orbit-dev/nginx:1.19"},
		Options{EnvTag: "yes: #no"})
	if err != nil {
		t.Fatal(err)
	}
	if got := parseBuildspec(t, s).Env.Variables["ENV_TAG"]; got != "yes: #no" {
		t.Errorf("ENV_TAG = %q", got)
	}
	if strings.Contains(s, `\u003e`) {
		t.Errorf("redirections are HTML-escaped:\n%s", s)
	}
}
