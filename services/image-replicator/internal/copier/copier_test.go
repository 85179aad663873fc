package copier

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecr "github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/awstest"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/ecr"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/oci"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/replicate"
)

// newRegistry starts an in-process OCI registry on loopback and returns its host:port.
func newRegistry(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(discardLogger())))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func push(t testing.TB, ref string, img v1.Image) v1.Hash {
	t.Helper()
	if err := remote.Write(mustRef(t, ref), img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// multiPlatformIndex is an index of two random images for linux/amd64 and linux/arm64.
func multiPlatformIndex(t testing.TB) v1.ImageIndex {
	t.Helper()
	idx := v1.ImageIndex(empty.Index)
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(1024, 3)
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	return idx
}

func head(t *testing.T, ref string) v1.Hash {
	t.Helper()
	d, err := remote.Head(mustRef(t, ref), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("head %s: %v", ref, err)
	}
	return d.Digest
}

func TestCopyImage(t *testing.T) {
	src, dst := newRegistry(t), newRegistry(t)
	img, err := random.Image(2048, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := push(t, src+"/team/app:1.0", img)

	c := New(Options{})
	st, err := c.Start(t.Context(), replicate.Request{Source: src + "/team/app:1.0", Destination: dst + "/orbit-dev/team/app:1.0"})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Done || !st.Succeeded || !strings.Contains(st.Message, want.String()) {
		t.Fatalf("Start = %+v", st)
	}
	if got := head(t, dst+"/orbit-dev/team/app:1.0"); got != want {
		t.Errorf("destination digest %s, source %s", got, want)
	}
	// Every layer arrived, not just the manifest.
	copied, err := remote.Image(mustRef(t, dst+"/orbit-dev/team/app:1.0"), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	layers, err := copied.Layers()
	if err != nil || len(layers) != 4 {
		t.Fatalf("copied image has %d layers (%v), want 4", len(layers), err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("layer: %v", err)
		}
		rc.Close()
	}
}

func TestCopyMultiPlatformIndex(t *testing.T) {
	src, dst := newRegistry(t), newRegistry(t)
	idx := multiPlatformIndex(t)
	if err := remote.WriteIndex(mustRef(t, src+"/tools/multi:v2"), idx); err != nil {
		t.Fatal(err)
	}
	want, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}

	got, err := New(Options{}).Copy(t.Context(), src+"/tools/multi:v2", dst+"/orbit-dev/tools/multi:v2")
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("Copy returned %s, want %s", got, want)
	}
	if d := head(t, dst+"/orbit-dev/tools/multi:v2"); d != want {
		t.Errorf("destination index digest %s, want %s", d, want)
	}
	// Each platform's image is there under its own digest.
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, desc := range m.Manifests {
		ref := dst + "/orbit-dev/tools/multi@" + desc.Digest.String()
		img, err := remote.Image(mustRef(t, ref), remote.WithContext(t.Context()))
		if err != nil {
			t.Fatalf("%s (%s) missing at the destination: %v", desc.Digest, desc.Platform, err)
		}
		if d, _ := img.Digest(); d != desc.Digest {
			t.Errorf("child %s arrived as %s", desc.Digest, d)
		}
	}
}

func TestCopyByDigest(t *testing.T) {
	src, dst := newRegistry(t), newRegistry(t)
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	d := push(t, src+"/app:1", img).String()
	c := New(Options{})

	// repo@digest → repo@digest.
	if _, err := c.Copy(t.Context(), src+"/app@"+d, dst+"/m/app@"+d); err != nil {
		t.Fatal(err)
	}
	if got := head(t, dst+"/m/app@"+d); got.String() != d {
		t.Errorf("digest %s, want %s", got, d)
	}
	// repo:tag@digest → pushed under the tag, digest kept.
	if _, err := c.Copy(t.Context(), src+"/app:1@"+d, dst+"/m/tagged:1@"+d); err != nil {
		t.Fatal(err)
	}
	if got := head(t, dst+"/m/tagged:1"); got.String() != d {
		t.Errorf("tag 1 has digest %s, want %s", got, d)
	}
	// A destination digest that is not the source's is refused before anything is pushed.
	other := "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if _, err := c.Copy(t.Context(), src+"/app:1", dst+"/m/wrong:1@"+other); err == nil || !strings.Contains(err.Error(), "digest") {
		t.Errorf("digest mismatch: %v", err)
	}
	if _, err := remote.Head(mustRef(t, dst+"/m/wrong:1"), remote.WithContext(t.Context())); err == nil {
		t.Error("a mismatched copy was pushed")
	}
}

func TestCopyUnpullableSource(t *testing.T) {
	src, dst := newRegistry(t), newRegistry(t)
	// No retries: a missing image answers at once.
	c := New(Options{})
	tests := []struct {
		name, src string
	}{
		{name: "missing tag", src: src + "/nothing/here:1"},
		{name: "unreachable registry", src: "127.0.0.1:1/x/y:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := c.Start(t.Context(), replicate.Request{Source: tt.src, Destination: dst + "/m/x:1"})
			if err != nil {
				t.Fatalf("Start returned an error for a failed copy: %v", err)
			}
			if !st.Done || st.Succeeded {
				t.Fatalf("Start = %+v, want a failed attempt", st)
			}
			if !strings.Contains(st.Message, "fetch source "+tt.src) {
				t.Errorf("message %q does not say which source could not be fetched", st.Message)
			}
		})
	}
	if _, err := c.Copy(t.Context(), "NOT VALID", dst+"/m/x:1"); err == nil {
		t.Error("Copy accepted an invalid source")
	}
}

func TestStartCancelled(t *testing.T) {
	src, dst := newRegistry(t), newRegistry(t)
	img, _ := random.Image(512, 1)
	push(t, src+"/app:1", img)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := New(Options{}).Start(ctx, replicate.Request{Source: src + "/app:1", Destination: dst + "/app:1"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Start with a cancelled context: %v, want context.Canceled (not a failed attempt)", err)
	}
}

func TestPollReportsInterruptedCopy(t *testing.T) {
	st, err := New(Options{}).Poll(t.Context(), "")
	if err != nil || !st.Done || st.Succeeded {
		t.Errorf("Poll = %+v, %v; want a finished, failed attempt", st, err)
	}
}

// TestCopyToECR copies into an ECR destination end to end: the repository is
// created through the real ECR client against a loopback AWS endpoint, the
// registry credentials come from GetAuthorizationToken, and the registry (on
// loopback, reached through an injected transport) demands them; the source
// registry demands the credentials of a Docker config.
func TestCopyToECR(t *testing.T) {
	const mirrorHost = "123456789012.dkr.ecr.us-west-2.amazonaws.com"
	const token = "AWS:ecr-password"

	srcPlain := newRegistry(t)
	img, err := random.Image(1024, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := push(t, srcPlain+"/team/app:1", img)
	// The same source, behind basic auth.
	src := authRegistry(t, "puller:pullpass", func(w http.ResponseWriter, r *http.Request) {
		r.URL.Scheme, r.URL.Host = "http", srcPlain
		proxy(w, r)
	})
	dst := authRegistry(t, token, registry.New(registry.Logger(discardLogger())).ServeHTTP)

	awsSrv := awstest.New(t)
	awsSrv.Handle("AmazonEC2ContainerRegistry_V20150921.CreateRepository", func(map[string]any) (int, any) {
		return http.StatusOK, map[string]any{"repository": map[string]any{}}
	})
	awsSrv.Handle("AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken", func(map[string]any) (int, any) {
		return http.StatusOK, map[string]any{"authorizationData": []any{map[string]any{
			"authorizationToken": base64.StdEncoding.EncodeToString([]byte(token)),
		}}}
	})
	client := awsecr.NewFromConfig(awsSrv.Config(), func(o *awsecr.Options) { o.BaseEndpoint = aws.String(awsSrv.URL) })
	ecrReg, err := ecr.New(client, ecr.Options{Region: awstest.Region, EnvTag: "orbit-dev"})
	if err != nil {
		t.Fatal(err)
	}
	docker, err := oci.NewDockerConfigKeychain([]byte(`{"auths":{"` + src.host + `":{"auth":"` +
		base64.StdEncoding.EncodeToString([]byte("puller:pullpass")) + `"}}}`))
	if err != nil {
		t.Fatal(err)
	}

	c := New(Options{
		Keychain:  authn.NewMultiKeychain(ecrReg, docker),
		Transport: rewriteHost{from: mirrorHost, to: dst.host},
		Creator:   ecrReg,
	})
	dstRef := mirrorHost + "/orbit-dev/team/app:1"
	st, err := c.Start(t.Context(), replicate.Request{Source: src.host + "/team/app:1", Destination: dstRef})
	if err != nil || !st.Succeeded {
		t.Fatalf("Start = %+v, %v", st, err)
	}

	creates := awsSrv.Calls("AmazonEC2ContainerRegistry_V20150921.CreateRepository")
	if len(creates) != 1 || creates[0].Body["repositoryName"] != "orbit-dev/team/app" || !strings.Contains(string(creates[0].Raw), `"Key":"Env","Value":"orbit-dev"`) {
		t.Errorf("CreateRepository calls: %v", creates)
	}
	if n := len(awsSrv.Calls("AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken")); n != 1 {
		t.Errorf("GetAuthorizationToken called %d times, want 1", n)
	}
	if dst.authorised.Load() == 0 || src.authorised.Load() == 0 {
		t.Errorf("authorised requests: destination %d, source %d", dst.authorised.Load(), src.authorised.Load())
	}
	got, err := remote.Head(mustRef(t, dstRef), remote.WithContext(t.Context()),
		remote.WithTransport(rewriteHost{from: mirrorHost, to: dst.host}), remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: "AWS", Password: "ecr-password"})))
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != want {
		t.Errorf("mirror digest %s, want %s", got.Digest, want)
	}
}

type authServer struct {
	host       string
	authorised atomic.Int64
}

// authRegistry serves next behind HTTP basic auth with userPass ("user:pass").
func authRegistry(t *testing.T, userPass string, next http.HandlerFunc) *authServer {
	t.Helper()
	a := &authServer{}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(userPass))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != want {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		a.authorised.Add(1)
		next(w, r)
	}))
	t.Cleanup(srv.Close)
	a.host = strings.TrimPrefix(srv.URL, "http://")
	return a
}

// proxy forwards r as it is (its URL already rewritten) and copies the answer back.
func proxy(w http.ResponseWriter, r *http.Request) {
	out, err := http.NewRequestWithContext(r.Context(), r.Method, r.URL.String(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	out.Header.Del("Authorization")
	out.ContentLength = r.ContentLength
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// rewriteHost sends requests for one registry host to a loopback server over HTTP.
type rewriteHost struct{ from, to string }

func (rw rewriteHost) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != rw.from {
		return http.DefaultTransport.RoundTrip(r)
	}
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host, out.Host = "http", rw.to, rw.from
	resp, err := http.DefaultTransport.RoundTrip(out)
	if resp != nil {
		// Relative upload locations resolve against the ECR host, as they would for real.
		resp.Request = r
	}
	return resp, err
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func mustRef(t testing.TB, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return ref
}

type creatorFunc func(ctx context.Context, repo name.Repository) error

func (f creatorFunc) EnsureRepository(ctx context.Context, repo name.Repository) error {
	return f(ctx, repo)
}

func TestStartCreatorErrors(t *testing.T) {
	src, dst := newRegistry(t), newRegistry(t)
	img, _ := random.Image(512, 1)
	push(t, src+"/app:1", img)
	req := replicate.Request{Source: src + "/app:1", Destination: dst + "/m/app:1"}

	// Throttled: no attempt was made, so it is a retryable error, not a failure.
	throttled := New(Options{Creator: creatorFunc(func(context.Context, name.Repository) error {
		return replicate.Retryable(errors.New("ThrottlingException"))
	})})
	if _, err := throttled.Start(t.Context(), req); !replicate.IsRetryable(err) {
		t.Errorf("throttled repository creation: %v, want a retryable error", err)
	}
	// Refused: the attempt failed.
	var asked []string
	refused := New(Options{Creator: creatorFunc(func(_ context.Context, repo name.Repository) error {
		asked = append(asked, repo.String())
		return errors.New("LimitExceededException: repository quota")
	})})
	st, err := refused.Start(t.Context(), req)
	if err != nil || !st.Done || st.Succeeded || !strings.Contains(st.Message, "quota") {
		t.Errorf("refused repository creation: %+v, %v", st, err)
	}
	if len(asked) != 1 || asked[0] != dst+"/m/app" {
		t.Errorf("EnsureRepository asked for %v, want [%s/m/app]", asked, dst)
	}
}
