package helm_test

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/orbit-workbench/orbit-controller/services/userspace-chart-manager/internal/helm"
	"github.com/orbit-workbench/orbit-controller/services/userspace-chart-manager/internal/helm/helmtest"
	"github.com/orbit-workbench/orbit-controller/services/userspace-chart-manager/internal/s3store"
)

const configMapTemplate = `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Chart.Name }}
data:
  v: {{ .Chart.Version | quote }}
`

func archive(t *testing.T, name, version string) helmtest.Archive {
	t.Helper()
	dir := helmtest.WriteChart(t, name, version, map[string]string{"cm.yaml": configMapTemplate})
	return helmtest.Package(t, dir, "")
}

func versions(cvs []helm.ChartVersion) map[string]string {
	out := map[string]string{}
	for _, cv := range cvs {
		out[cv.Name] = cv.Version
	}
	return out
}

func opts() helm.RepositoryOptions {
	o := helm.DefaultRepositoryOptions()
	o.Timeout = 10 * time.Second
	return o
}

func TestHTTPRepositoryNewestVersionIncludingDevelopmentAndCaches(t *testing.T) {
	repo := helmtest.NewRepo(t,
		archive(t, "alpha", "0.1.0"), archive(t, "alpha", "0.2.0-dev.1"), archive(t, "alpha", "0.1.5"),
		archive(t, "beta", "1.0.0"), archive(t, "beta", "1.0.0-rc.1"))
	o := opts()
	o.IndexTTL = 300 * time.Millisecond
	r := helm.NewRepositories(o)
	src := helm.Source{URL: repo.URL}

	got, err := r.Latest(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"alpha": "0.2.0-dev.1", "beta": "1.0.0"}; !reflect.DeepEqual(versions(got), want) {
		t.Fatalf("newest versions %v, want %v", versions(got), want)
	}
	if _, err := r.Latest(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	if n := repo.Requests("/index.yaml"); n != 1 {
		t.Errorf("index fetched %d times within its TTL, want 1", n)
	}
	time.Sleep(400 * time.Millisecond)
	if _, err := r.Latest(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	if n := repo.Requests("/index.yaml"); n != 2 {
		t.Errorf("index fetched %d times after its TTL, want 2", n)
	}

	// Concurrent loads of one archive share one download; later loads come from memory.
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			ch, err := r.Load(t.Context(), src, got[0])
			if err == nil && (ch.Name != "alpha" || ch.Version != "0.2.0-dev.1") {
				t.Errorf("loaded %s %s", ch.Name, ch.Version)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := repo.Requests("/alpha-0.2.0-dev.1.tgz"); n != 1 {
		t.Errorf("archive downloaded %d times, want 1", n)
	}
}

func TestHTTPRepositoryRejectsDigestMismatch(t *testing.T) {
	repo := helmtest.NewRepo(t, archive(t, "alpha", "0.1.0"))
	r := helm.NewRepositories(opts())
	src := helm.Source{URL: repo.URL}
	got, err := r.Latest(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	cv := got[0]
	cv.Digest = strings.Repeat("0", 64)
	if _, err := r.Load(t.Context(), src, cv); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("err = %v, want a digest mismatch", err)
	}
}

func TestUnreachableRepository(t *testing.T) {
	r := helm.NewRepositories(opts())
	_, err := r.Latest(t.Context(), helm.Source{URL: "http://127.0.0.1:1/charts"})
	if err == nil || !strings.Contains(err.Error(), "read index of http://127.0.0.1:1/charts") {
		t.Fatalf("err = %v, want a failed index read", err)
	}
}

func TestOCIRepositoryListsCatalogAndNewestTag(t *testing.T) {
	reg := helmtest.NewRegistry(t)
	reg.Push(t, "charts", archive(t, "alpha", "0.1.0"))
	reg.Push(t, "charts", archive(t, "alpha", "0.3.0-dev"))
	reg.Push(t, "charts", archive(t, "beta", "2.0.0"))
	reg.Push(t, "other", archive(t, "gamma", "1.0.0"))
	o := opts()
	o.PlainHTTPHosts = []string{reg.Host}
	r := helm.NewRepositories(o)
	src := helm.Source{URL: "oci://" + reg.Host + "/charts"}
	got, err := r.Latest(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"alpha": "0.3.0-dev", "beta": "2.0.0"}; !reflect.DeepEqual(versions(got), want) {
		t.Fatalf("newest versions %v, want %v", versions(got), want)
	}
	ch, err := r.Load(t.Context(), src, got[0])
	if err != nil {
		t.Fatal(err)
	}
	if ch.Name != "alpha" || ch.Version != "0.3.0-dev" {
		t.Errorf("pulled %s %s", ch.Name, ch.Version)
	}
}

func s3Repositories(t *testing.T, endpoint string) *helm.Repositories {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	o := opts()
	so := s3store.DefaultOptions()
	so.EndpointURL, so.PathStyle = endpoint, true
	o.ObjectStore = s3store.New(so)
	return helm.NewRepositories(o)
}

func TestS3RepositoryWithIndex(t *testing.T) {
	s3 := helmtest.NewS3(t)
	a1, a2, b := archive(t, "alpha", "0.1.0"), archive(t, "alpha", "0.2.0"), archive(t, "beta", "0.0.1-alpha.1")
	for _, a := range []helmtest.Archive{a1, a2, b} {
		s3.Put("charts", "lake/user/"+a.File(), a.Data)
	}
	// helm-s3 writes absolute s3:// URLs; relative ones must work too.
	s3.Put("charts", "lake/user/index.yaml", helmtest.Index(t, []helmtest.Archive{a1, a2, b}, "s3://charts/lake/user"))
	r := s3Repositories(t, s3.Endpoint)
	src := helm.Source{URL: "s3://charts/lake/user"}
	got, err := r.Latest(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"alpha": "0.2.0", "beta": "0.0.1-alpha.1"}; !reflect.DeepEqual(versions(got), want) {
		t.Fatalf("newest versions %v, want %v", versions(got), want)
	}
	for _, cv := range got {
		ch, err := r.Load(t.Context(), src, cv)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Name != cv.Name || ch.Version != cv.Version {
			t.Errorf("loaded %s %s for %s %s", ch.Name, ch.Version, cv.Name, cv.Version)
		}
	}
	if n := s3.Gets("charts", "lake/user/alpha-0.1.0.tgz"); n != 0 {
		t.Errorf("an older version was downloaded %d times", n)
	}
}

func TestS3RepositoryWithoutIndexListsArchives(t *testing.T) {
	s3 := helmtest.NewS3(t)
	for _, a := range []helmtest.Archive{archive(t, "my-chart", "1.0.0"), archive(t, "my-chart", "1.1.0-rc.1"), archive(t, "beta", "0.1.0")} {
		s3.Put("charts", "team/"+a.File(), a.Data)
	}
	s3.Put("charts", "team/nested/gamma-1.0.0.tgz", []byte("ignored"))
	s3.Put("charts", "team/README.md", []byte("ignored"))
	r := s3Repositories(t, s3.Endpoint)
	src := helm.Source{URL: "s3://charts/team/"}
	got, err := r.Latest(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"my-chart": "1.1.0-rc.1", "beta": "0.1.0"}; !reflect.DeepEqual(versions(got), want) {
		t.Fatalf("newest versions %v, want %v", versions(got), want)
	}
	ch, err := r.Load(t.Context(), src, got[1])
	if err != nil {
		t.Fatal(err)
	}
	if ch.Name != "my-chart" {
		t.Errorf("loaded %s", ch.Name)
	}
}
