package ecr

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecr "github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/awstest"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/replicate"
)

const (
	targetDescribe = "AmazonEC2ContainerRegistry_V20150921.DescribeImages"
	targetCreate   = "AmazonEC2ContainerRegistry_V20150921.CreateRepository"
	targetToken    = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
	mirrorHost     = "123456789012.dkr.ecr.us-west-2.amazonaws.com"
	digest         = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func newRegistry(t *testing.T, opts Options) (*Registry, *awstest.Server) {
	t.Helper()
	srv := awstest.New(t)
	client := awsecr.NewFromConfig(srv.Config(), func(o *awsecr.Options) { o.BaseEndpoint = aws.String(srv.URL) })
	if opts.Region == "" {
		opts.Region = awstest.Region
	}
	r, err := New(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r, srv
}

func TestParseHost(t *testing.T) {
	tests := []struct {
		host string
		want Host
		ok   bool
	}{
		{mirrorHost, Host{"123456789012", "us-west-2"}, true},
		{"602401143452.dkr.ecr.us-east-2.amazonaws.com", Host{"602401143452", "us-east-2"}, true},
		{"123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", Host{"123456789012", "us-gov-west-1"}, true},
		{"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", Host{"123456789012", "cn-north-1"}, true},
		{"123456789012.DKR.ECR.US-WEST-2.AMAZONAWS.COM", Host{"123456789012", "us-west-2"}, true},
		{"public.ecr.aws", Host{}, false},
		{"12345.dkr.ecr.us-west-2.amazonaws.com", Host{}, false},
		{"123456789012.dkr.ecr.us-west-2.amazonaws.com.evil.example", Host{}, false},
		{"quay.io", Host{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseHost(tt.host)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseHost(%q) = %+v, %v; want %+v, %v", tt.host, got, ok, tt.want, tt.ok)
		}
	}
}

func TestHas(t *testing.T) {
	tests := []struct {
		name          string
		ref           string
		code          string // error code to answer with, "" for an image
		wantRepo      string
		wantID        map[string]any
		want          bool
		wantErr       bool
		wantRetryable bool
	}{
		{name: "tag present", ref: mirrorHost + "/orbit-dev/nginx:1.19", wantRepo: "orbit-dev/nginx",
			wantID: map[string]any{"imageTag": "1.19"}, want: true},
		{name: "no tag means latest", ref: mirrorHost + "/orbit-dev/nginx", wantRepo: "orbit-dev/nginx",
			wantID: map[string]any{"imageTag": "latest"}, want: true},
		{name: "digest present", ref: mirrorHost + "/orbit-dev/quay.io/x/y@" + digest, wantRepo: "orbit-dev/quay.io/x/y",
			wantID: map[string]any{"imageDigest": digest}, want: true},
		{name: "tag and digest checks the digest", ref: mirrorHost + "/orbit-dev/nginx:1@" + digest, wantRepo: "orbit-dev/nginx",
			wantID: map[string]any{"imageDigest": digest}, want: true},
		{name: "image not found", ref: mirrorHost + "/orbit-dev/nginx:2", code: "ImageNotFoundException", wantRepo: "orbit-dev/nginx",
			wantID: map[string]any{"imageTag": "2"}, want: false},
		{name: "repository not found", ref: mirrorHost + "/orbit-dev/new:1", code: "RepositoryNotFoundException", wantRepo: "orbit-dev/new",
			wantID: map[string]any{"imageTag": "1"}, want: false},
		{name: "throttled", ref: mirrorHost + "/orbit-dev/nginx:1", code: "ThrottlingException", wantRepo: "orbit-dev/nginx",
			wantID: map[string]any{"imageTag": "1"}, wantErr: true, wantRetryable: true},
		{name: "access denied", ref: mirrorHost + "/orbit-dev/nginx:1", code: "AccessDeniedException", wantRepo: "orbit-dev/nginx",
			wantID: map[string]any{"imageTag": "1"}, wantErr: true},
		{name: "not ECR", ref: "quay.io/x/y:1", wantErr: true},
		{name: "other region", ref: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/x:1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, srv := newRegistry(t, Options{})
			srv.Handle(targetDescribe, func(map[string]any) (int, any) {
				if tt.code != "" {
					return awstest.Error(tt.code, "nope")
				}
				return http.StatusOK, map[string]any{"imageDetails": []any{map[string]any{
					"registryId": "123456789012", "repositoryName": tt.wantRepo, "imageDigest": digest,
					"imagePushedAt": float64(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix()),
				}}}
			})
			got, err := r.Has(t.Context(), tt.ref)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Has = %v, want an error", got)
				}
				if replicate.IsRetryable(err) != tt.wantRetryable {
					t.Errorf("IsRetryable(%v) = %v", err, !tt.wantRetryable)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if got != tt.want {
				t.Errorf("Has = %v, want %v", got, tt.want)
			}
			calls := srv.Calls(targetDescribe)
			if tt.wantRepo == "" {
				if len(calls) != 0 {
					t.Errorf("DescribeImages called for %s", tt.ref)
				}
				return
			}
			if len(calls) != 1 {
				t.Fatalf("DescribeImages called %d times, want once", len(calls))
			}
			in := calls[0].Body
			ids, _ := in["imageIds"].([]any)
			if in["registryId"] != "123456789012" || in["repositoryName"] != tt.wantRepo || len(ids) != 1 {
				t.Fatalf("DescribeImages input %s", calls[0].Raw)
			}
			id := ids[0].(map[string]any)
			if len(id) != len(tt.wantID) {
				t.Errorf("imageIds[0] = %v, want %v", id, tt.wantID)
			}
			for k, v := range tt.wantID {
				if id[k] != v {
					t.Errorf("imageIds[0].%s = %v, want %v", k, id[k], v)
				}
			}
		})
	}
}

func TestEnsureRepository(t *testing.T) {
	tests := []struct {
		name    string
		repo    string
		code    string
		envTag  string
		calls   int
		wantErr bool
	}{
		{name: "created with Env tag", repo: mirrorHost + "/orbit-dev/nginx", envTag: "orbit-dev", calls: 1},
		{name: "created without tag", repo: mirrorHost + "/nginx", calls: 1},
		{name: "already exists", repo: mirrorHost + "/orbit-dev/nginx", code: "RepositoryAlreadyExistsException", envTag: "orbit-dev", calls: 1},
		{name: "limit", repo: mirrorHost + "/orbit-dev/nginx", code: "LimitExceededException", calls: 1, wantErr: true},
		{name: "invalid name", repo: mirrorHost + "/orbit-dev/nginx", code: "InvalidParameterException", calls: 1, wantErr: true},
		{name: "not ECR: nothing to do", repo: "quay.io/x/y", calls: 0},
		{name: "ECR in another region", repo: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/x", calls: 0, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, srv := newRegistry(t, Options{EnvTag: tt.envTag})
			srv.Handle(targetCreate, func(body map[string]any) (int, any) {
				if tt.code != "" {
					return awstest.Error(tt.code, "no")
				}
				return http.StatusOK, map[string]any{"repository": map[string]any{"repositoryName": body["repositoryName"]}}
			})
			repo, err := name.NewRepository(tt.repo)
			if err != nil {
				t.Fatal(err)
			}
			err = r.EnsureRepository(t.Context(), repo)
			if (err != nil) != tt.wantErr {
				t.Fatalf("EnsureRepository: %v, want error %v", err, tt.wantErr)
			}
			calls := srv.Calls(targetCreate)
			if len(calls) != tt.calls {
				t.Fatalf("CreateRepository called %d times, want %d", len(calls), tt.calls)
			}
			if tt.calls == 0 {
				return
			}
			in := calls[0].Body
			if in["repositoryName"] != repo.RepositoryStr() || in["registryId"] != "123456789012" {
				t.Errorf("CreateRepository input %s", calls[0].Raw)
			}
			tags, _ := in["tags"].([]any)
			if tt.envTag == "" {
				if len(tags) != 0 {
					t.Errorf("tags %v without an Env tag configured", tags)
				}
				return
			}
			if len(tags) != 1 || tags[0].(map[string]any)["Key"] != "Env" || tags[0].(map[string]any)["Value"] != tt.envTag {
				t.Errorf("tags = %v, want Env=%s", in["tags"], tt.envTag)
			}
		})
	}
}

func TestKeychain(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r, srv := newRegistry(t, Options{Now: func() time.Time { return now }})
	token := 0
	srv.Handle(targetToken, func(map[string]any) (int, any) {
		token++
		pass := "pass-" + strings.Repeat("x", token)
		return http.StatusOK, map[string]any{"authorizationData": []any{map[string]any{
			"authorizationToken": base64.StdEncoding.EncodeToString([]byte("AWS:" + pass)),
			"expiresAt":          float64(now.Add(12 * time.Hour).Unix()),
			"proxyEndpoint":      "https://" + mirrorHost,
		}}}
	})
	resolve := func(host string) *authn.AuthConfig {
		t.Helper()
		reg, err := name.NewRegistry(host)
		if err != nil {
			t.Fatal(err)
		}
		auth, err := authn.Resolve(t.Context(), r, reg)
		if err != nil {
			t.Fatal(err)
		}
		if auth == authn.Anonymous {
			return nil
		}
		cfg, err := auth.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}

	cfg := resolve(mirrorHost)
	if cfg == nil || cfg.Username != "AWS" || cfg.Password != "pass-x" {
		t.Fatalf("mirror credentials = %+v", cfg)
	}
	// Another account in the same region: the same token serves.
	if cfg := resolve("602401143452.dkr.ecr.us-west-2.amazonaws.com"); cfg == nil || cfg.Password != "pass-x" {
		t.Errorf("other account's credentials = %+v", cfg)
	}
	if n := len(srv.Calls(targetToken)); n != 1 {
		t.Errorf("GetAuthorizationToken called %d times, want 1 (cached)", n)
	}
	if resolve("quay.io") != nil || resolve("602401143452.dkr.ecr.us-east-2.amazonaws.com") != nil {
		t.Error("credentials offered to a registry outside ECR in our region")
	}
	// Close to expiry the token is renewed.
	now = now.Add(12*time.Hour - 10*time.Minute)
	if cfg := resolve(mirrorHost); cfg == nil || cfg.Password != "pass-xx" {
		t.Errorf("renewed credentials = %+v", cfg)
	}
	if _, err := r.Resolve(name.MustParseReference("quay.io/x").Context()); err == nil {
		t.Error("Resolve without a context fetched a token")
	}

	srv.Handle(targetToken, func(map[string]any) (int, any) { return awstest.Error("ThrottlingException", "slow") })
	now = now.Add(24 * time.Hour)
	reg, _ := name.NewRegistry(mirrorHost)
	if _, err := authn.Resolve(t.Context(), r, reg); !replicate.IsRetryable(err) {
		t.Errorf("throttled token fetch: %v, want a retryable error", err)
	}
}
