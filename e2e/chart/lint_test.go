package chart

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint/support"

	"github.com/orbit-workbench/orbit-controller/e2e/internal/render"
	"github.com/orbit-workbench/orbit-controller/e2e/internal/repo"
)

// TestLint: `helm lint --strict` finds nothing to say beyond information, with the defaults
// and with every service on in each certificate mode.
func TestLint(t *testing.T) {
	kv, err := chartutil.ParseKubeVersion(render.KubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]string{
		"defaults":     nil,
		"self-signed":  {allEnabled},
		"csr":          {allEnabled, "global: {certificates: {mode: csr}}"},
		"cert-manager": {allEnabled, "global: {certificates: {mode: cert-manager}}"},
	}
	for name, docs := range cases {
		t.Run(name, func(t *testing.T) {
			lint := action.NewLint()
			lint.Strict = true
			lint.Namespace = ns
			lint.KubeVersion = kv
			res := lint.Run([]string{repo.ChartDir(t)}, values(t, docs...))
			for _, err := range res.Errors {
				t.Errorf("lint: %v", err)
			}
			for _, m := range res.Messages {
				if m.Severity > support.InfoSev {
					t.Errorf("lint: %s", m)
				}
			}
			if res.TotalChartsLinted != 1 {
				t.Errorf("linted %d charts", res.TotalChartsLinted)
			}
		})
	}
}

// TestChartMetadata: the umbrella declares one dependency per subchart directory, each a
// local file:// reference enabled by <name>.enabled, at the subchart's own version; subcharts
// carry the umbrella's appVersion (their images default to it).
func TestChartMetadata(t *testing.T) {
	dir := repo.ChartDir(t)
	chrt, err := loader.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if chrt.Metadata.APIVersion != "v2" {
		t.Errorf("apiVersion %s", chrt.Metadata.APIVersion)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "charts"))
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]bool{}
	for _, e := range entries {
		if e.IsDir() {
			dirs[e.Name()] = true
		}
	}
	subs := map[string]string{}
	for _, c := range chrt.Dependencies() {
		subs[c.Name()] = c.Metadata.Version
		if c.Metadata.AppVersion != chrt.Metadata.AppVersion {
			t.Errorf("subchart %s appVersion %s, want the umbrella's %s", c.Name(), c.Metadata.AppVersion, chrt.Metadata.AppVersion)
		}
	}
	if len(chrt.Metadata.Dependencies) != len(dirs) {
		t.Errorf("%d dependencies for %d subchart directories", len(chrt.Metadata.Dependencies), len(dirs))
	}
	vals := chrt.Values
	for _, d := range chrt.Metadata.Dependencies {
		if !dirs[d.Name] {
			t.Errorf("dependency %s has no directory charts/%s", d.Name, d.Name)
		}
		if d.Repository != "file://charts/"+d.Name {
			t.Errorf("dependency %s: repository %q", d.Name, d.Repository)
		}
		if d.Condition != d.Name+".enabled" {
			t.Errorf("dependency %s: condition %q", d.Name, d.Condition)
		}
		if subs[d.Name] != d.Version {
			t.Errorf("dependency %s: version %s, chart has %s", d.Name, d.Version, subs[d.Name])
		}
		section, _ := vals[d.Name].(map[string]any)
		if _, ok := section["enabled"].(bool); !ok {
			t.Errorf("values.yaml: no %s.enabled", d.Name)
		}
	}
	for _, name := range []string{"image-updater", "image-replicator"} {
		if vals[name].(map[string]any)["enabled"] != false {
			t.Errorf("%s is on by default", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "values.schema.json")); err != nil {
		t.Error(err)
	}
	for _, c := range chrt.CRDObjects() {
		if !strings.Contains(c.Filename, "/crds/") && !strings.HasPrefix(c.Filename, "crds/") {
			t.Errorf("CRD %s outside crds/", c.Filename)
		}
	}
	if len(chrt.CRDObjects()) < 2 {
		t.Errorf("%d CRDs in the chart, want PodSetting and ImageReplication", len(chrt.CRDObjects()))
	}
}
