package platform

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/repo"

	"github.com/orbit-workbench/orbit-controller/pkg/testenv"
)

// fixtures are the loopback servers the scenario uses in place of the cloud: a Helm chart
// repository of per-user charts, a public registry holding the notebook image, and the
// private mirror.
type Fixtures struct {
	ChartRepoURL   string
	Charts         []string
	SourceHost     string
	MirrorHost     string
	NotebookImage  string
	NotebookDigest string
	servers        []*httptest.Server
	dir            string
}

func startFixtures(ctx context.Context) (*Fixtures, error) {
	f := &Fixtures{}
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	if f.dir, err = os.MkdirTemp("", "orbit-demo-charts-"); err != nil {
		return nil, fmt.Errorf("chart folder: %w", err)
	}
	charts := httptest.NewServer(http.FileServer(http.Dir(f.dir)))
	f.servers = append(f.servers, charts)
	f.ChartRepoURL = charts.URL
	entries, err := os.ReadDir(filepath.Join(root, "e2e", "platform", "charts"))
	if err != nil {
		return nil, fmt.Errorf("demo charts: %w", err)
	}
	for _, e := range entries {
		ch, err := loader.LoadDir(filepath.Join(root, "e2e", "platform", "charts", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("load chart %s: %w", e.Name(), err)
		}
		if _, err := chartutil.Save(ch, f.dir); err != nil {
			return nil, fmt.Errorf("package chart %s: %w", e.Name(), err)
		}
		f.Charts = append(f.Charts, ch.Name())
	}
	index, err := repo.IndexDirectory(f.dir, charts.URL)
	if err != nil {
		return nil, fmt.Errorf("index charts: %w", err)
	}
	if err := index.WriteFile(filepath.Join(f.dir, "index.yaml"), 0o644); err != nil {
		return nil, fmt.Errorf("write index: %w", err)
	}

	src := httptest.NewServer(registry.New(registry.Logger(discardLogger())))
	mirror := httptest.NewServer(registry.New(registry.Logger(discardLogger())))
	f.servers = append(f.servers, src, mirror)
	f.SourceHost = strings.TrimPrefix(src.URL, "http://")
	f.MirrorHost = strings.TrimPrefix(mirror.URL, "http://")
	img, err := random.Image(256<<10, 3)
	if err != nil {
		return nil, fmt.Errorf("notebook image: %w", err)
	}
	f.NotebookImage = f.SourceHost + "/jupyter/notebook:v1"
	ref, err := name.ParseReference(f.NotebookImage)
	if err != nil {
		return nil, err
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return nil, fmt.Errorf("push notebook image: %w", err)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	f.NotebookDigest = d.String()
	return f, nil
}

// Close stops the servers and removes the packaged charts.
func (f *Fixtures) Close() {
	for _, s := range f.servers {
		s.Close()
	}
	_ = os.RemoveAll(f.dir)
}
