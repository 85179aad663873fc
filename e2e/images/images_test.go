// Package images tests how the services become images and get deployed in development: the
// one Dockerfile, its .dockerignore, skaffold.yaml and the images workflow, against the
// services that exist and the chart's real values.
package images

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/Masterminds/sprig/v3"
	jsonpatch "github.com/evanphx/json-patch/v5"
	"helm.sh/helm/v3/pkg/strvals"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/orbit-workbench/orbit-controller/e2e/internal/render"
	"github.com/orbit-workbench/orbit-controller/e2e/internal/repo"
)

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	cmd, args string
}

func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// goVersion is go.work's go directive, major.minor.
func goVersion(t *testing.T, root string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("go.work has no go directive")
	}
	return string(m[1])
}

// TestDockerfile: a static, trimmed build of ./services/${SERVICE} with the version stamped
// in, on the Go of go.work, shipped in distroless static as non-root.
func TestDockerfile(t *testing.T) {
	root := repo.Root(t)
	ins := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	var froms []string
	var build string
	var args, users []string
	for _, in := range ins {
		switch in.cmd {
		case "FROM":
			f := strings.Fields(in.args)
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				f = f[1:]
			}
			froms = append(froms, f[0])
		case "ARG":
			args = append(args, strings.SplitN(in.args, "=", 2)[0])
		case "RUN":
			if strings.Contains(in.args, "go build") {
				build = in.args
			}
		case "USER":
			users = append(users, in.args)
		}
	}
	if len(froms) < 2 {
		t.Fatalf("stages %v, want a builder and a runtime", froms)
	}
	if want := "golang:" + goVersion(t, root); froms[0] != want {
		t.Errorf("builder %s, want %s (go.work's go directive)", froms[0], want)
	}
	if last := froms[len(froms)-1]; last != "gcr.io/distroless/static:nonroot" {
		t.Errorf("runtime image %s, want gcr.io/distroless/static:nonroot", last)
	}
	if !slices.Contains(args, "SERVICE") || !slices.Contains(args, "VERSION") {
		t.Errorf("ARGs %v lack SERVICE or VERSION", args)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-X main.version=${VERSION}`, "./services/${SERVICE}"} {
		if !strings.Contains(build, want) {
			t.Errorf("the go build step %q lacks %s", build, want)
		}
	}
	if len(users) == 0 || (users[len(users)-1] != "65532:65532" && users[len(users)-1] != "nonroot") {
		t.Errorf("runtime USER %v, want the non-root 65532", users)
	}
}

// TestDockerfileBuildsEveryService runs the Dockerfile's build step for every service module
// (no Docker on the test machine: the same `go build ./services/<name>` from the root).
func TestDockerfileBuildsEveryService(t *testing.T) {
	root := repo.Root(t)
	for _, svc := range repo.Services(t) {
		t.Run(svc, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
			defer cancel()
			if err := repo.Build(ctx, root, svc, os.DevNull); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDockerignore(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repo.Root(t), ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	for _, want := range []string{".cache/", "bin/", ".git"} {
		if !slices.Contains(lines, want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
	// Every module of go.work must stay in the context, or the workspace build fails.
	work, err := os.ReadFile(filepath.Join(repo.Root(t), "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s*\./(\S+)`).FindAllStringSubmatch(string(work), -1) {
		top := strings.SplitN(m[1], "/", 2)[0]
		for _, l := range lines {
			if strings.TrimSuffix(l, "/") == top {
				t.Errorf(".dockerignore excludes %s, a module of go.work", top)
			}
		}
	}
}

type skaffoldConfig struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Build      struct {
		Artifacts []struct {
			Image   string `json:"image"`
			Context string `json:"context"`
			Docker  *struct {
				Dockerfile string            `json:"dockerfile"`
				BuildArgs  map[string]string `json:"buildArgs"`
			} `json:"docker"`
		} `json:"artifacts"`
	} `json:"build"`
	Deploy struct {
		Helm struct {
			Releases []struct {
				Name              string            `json:"name"`
				ChartPath         string            `json:"chartPath"`
				Namespace         string            `json:"namespace"`
				SetValues         map[string]any    `json:"setValues"`
				SetValueTemplates map[string]string `json:"setValueTemplates"`
			} `json:"releases"`
		} `json:"helm"`
	} `json:"deploy"`
	Profiles []struct {
		Name    string          `json:"name"`
		Patches json.RawMessage `json:"patches"`
	} `json:"profiles"`
}

// skaffoldWithProfiles reads skaffold.yaml with the named profiles' patches applied.
func skaffoldWithProfiles(t *testing.T, profiles ...string) skaffoldConfig {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repo.Root(t), "skaffold.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatalf("skaffold.yaml: %v", err)
	}
	var base skaffoldConfig
	if err := yaml.Unmarshal(raw, &base); err != nil {
		t.Fatalf("skaffold.yaml: %v", err)
	}
	for _, name := range profiles {
		i := slices.IndexFunc(base.Profiles, func(p struct {
			Name    string          `json:"name"`
			Patches json.RawMessage `json:"patches"`
		}) bool {
			return p.Name == name
		})
		if i < 0 {
			t.Fatalf("skaffold.yaml has no profile %s", name)
		}
		patch, err := jsonpatch.DecodePatch(base.Profiles[i].Patches)
		if err != nil {
			t.Fatalf("profile %s: %v", name, err)
		}
		if doc, err = patch.Apply(doc); err != nil {
			t.Fatalf("profile %s: %v", name, err)
		}
	}
	var out skaffoldConfig
	if err := json.Unmarshal(doc, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// imageVar is skaffold's template name for an image: non-alphanumerics become "_".
func imageVar(image string) string {
	return regexp.MustCompile(`[^A-Za-z0-9]`).ReplaceAllString(image, "_")
}

// TestSkaffold: one artifact per service, built from the Dockerfile with SERVICE set; the
// release sets real values of the chart; and deploying with every profile on puts each built
// image into the container of its service (checked by rendering the chart with exactly the
// values skaffold would pass, its templates filled in as skaffold fills them).
func TestSkaffold(t *testing.T) {
	root := repo.Root(t)
	services := repo.Services(t)
	cfg := skaffoldWithProfiles(t, "image-updater", "image-replicator")
	if !strings.HasPrefix(cfg.APIVersion, "skaffold/v4beta") || cfg.Kind != "Config" {
		t.Errorf("apiVersion %s kind %s, want skaffold/v4beta* Config", cfg.APIVersion, cfg.Kind)
	}
	data := map[string]string{}
	var built []string
	for _, a := range cfg.Build.Artifacts {
		svc := strings.TrimPrefix(a.Image, "orbit-controller/")
		built = append(built, svc)
		if a.Docker == nil || a.Docker.BuildArgs["SERVICE"] != svc || (a.Context != "" && a.Context != ".") {
			t.Errorf("artifact %s: not the root Dockerfile with SERVICE=%s", a.Image, svc)
			continue
		}
		if _, err := os.Stat(filepath.Join(root, a.Docker.Dockerfile)); err != nil {
			t.Errorf("artifact %s: %v", a.Image, err)
		}
		data["IMAGE_REPO_"+imageVar(a.Image)] = "registry.test/" + a.Image
		data["IMAGE_TAG_"+imageVar(a.Image)] = "t-" + svc
	}
	if slices.Sort(built); !slices.Equal(built, services) {
		t.Errorf("artifacts for %v, want one per service %v", built, services)
	}
	if len(cfg.Deploy.Helm.Releases) != 1 {
		t.Fatalf("%d helm releases, want the umbrella chart", len(cfg.Deploy.Helm.Releases))
	}
	rel := cfg.Deploy.Helm.Releases[0]
	chartDir := filepath.Join(root, rel.ChartPath)
	if chartDir != repo.ChartDir(t) {
		t.Errorf("chartPath %s, want charts/orbit-controller", rel.ChartPath)
	}
	defaults := chartValues(t, chartDir)

	// Every key skaffold sets is a value of the chart.
	set := map[string]string{}
	for k, v := range rel.SetValues {
		set[k] = fmt.Sprint(v)
	}
	for k, tmpl := range rel.SetValueTemplates {
		tp, err := template.New(k).Funcs(sprig.TxtFuncMap()).Option("missingkey=zero").Parse(tmpl)
		if err != nil {
			t.Errorf("setValueTemplates %s: %v", k, err)
			continue
		}
		var b strings.Builder
		if err := tp.Execute(&b, data); err != nil {
			t.Errorf("setValueTemplates %s: %v", k, err)
		}
		if strings.Contains(tmpl, "IMAGE_") && (b.Len() == 0 || strings.Contains(b.String(), "<no value>")) {
			t.Errorf("setValueTemplates %s=%q names no artifact", k, tmpl)
		}
		set[k] = b.String()
	}
	for k := range set {
		if _, ok := lookup(defaults, strings.Split(k, ".")); !ok {
			t.Errorf("skaffold sets %s, which is not a value in values.yaml", k)
		}
	}

	vals := map[string]any{}
	for _, k := range slices.Sorted(mapsKeys(set)) {
		if err := strvals.ParseInto(k+"="+set[k], vals); err != nil {
			t.Fatalf("--set %s=%s: %v", k, set[k], err)
		}
	}
	r, err := render.Chart(chartDir, rel.Name, rel.Namespace, vals)
	if err != nil {
		t.Fatalf("render with skaffold's values: %v", err)
	}
	images := map[string]string{}
	for _, o := range r.All("Deployment") {
		var d appsv1.Deployment
		if err := render.Into(o, &d); err != nil {
			t.Fatal(err)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			images[c.Name] = c.Image
		}
	}
	for _, svc := range services {
		want := fmt.Sprintf("registry.test/orbit-controller/%s:t-%s", svc, svc)
		if images[svc] != want {
			t.Errorf("container %s runs %q under skaffold, want its artifact %q", svc, images[svc], want)
		}
	}
}

// TestSkaffoldProfiles: without profiles the optional services stay off; each profile turns
// its own on.
func TestSkaffoldProfiles(t *testing.T) {
	base := skaffoldWithProfiles(t)
	for _, svc := range []string{"image-updater", "image-replicator"} {
		if v, ok := base.Deploy.Helm.Releases[0].SetValues[svc+".enabled"]; ok && v == true {
			t.Errorf("%s enabled without its profile", svc)
		}
		cfg := skaffoldWithProfiles(t, svc)
		if cfg.Deploy.Helm.Releases[0].SetValues[svc+".enabled"] != true {
			t.Errorf("profile %s does not enable %s", svc, svc)
		}
	}
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func chartValues(t *testing.T, dir string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func lookup(m map[string]any, path []string) (any, bool) {
	v, ok := m[path[0]]
	if !ok {
		return nil, false
	}
	if len(path) == 1 {
		_, isMap := v.(map[string]any)
		return v, !isMap // a leaf
	}
	sub, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	return lookup(sub, path[1:])
}

// TestImagesWorkflow: a matrix over every service building the Dockerfile with
// docker/build-push-action, pushing except for pull requests.
func TestImagesWorkflow(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repo.Root(t), ".github", "workflows", "images.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Jobs map[string]struct {
			Strategy struct {
				Matrix struct {
					Service []string `json:"service"`
				} `json:"matrix"`
			} `json:"strategy"`
			Steps []struct {
				Uses string         `json:"uses"`
				With map[string]any `json:"with"`
			} `json:"steps"`
		} `json:"jobs"`
	}
	if err := yaml.Unmarshal(raw, &wf); err != nil {
		t.Fatal(err)
	}
	// YAML 1.1 reads the key `on` as true; GitHub reads it as "on".
	var generic map[string]any
	if err := yaml.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	on, _ := generic["on"].(map[string]any)
	if on == nil {
		on, _ = generic["true"].(map[string]any)
	}
	if _, ok := on["pull_request"]; !ok {
		t.Error("images workflow does not run on pull requests")
	}
	if _, ok := on["push"]; !ok {
		t.Error("images workflow does not run on pushes")
	}
	var found bool
	for name, job := range wf.Jobs {
		for _, s := range job.Steps {
			if !strings.HasPrefix(s.Uses, "docker/build-push-action@") {
				continue
			}
			found = true
			if got := slices.Sorted(slices.Values(job.Strategy.Matrix.Service)); !slices.Equal(got, repo.Services(t)) {
				t.Errorf("job %s: matrix.service %v, want every service %v", name, got, repo.Services(t))
			}
			if push := fmt.Sprint(s.With["push"]); !strings.Contains(push, "github.event_name != 'pull_request'") {
				t.Errorf("job %s: push: %q would push pull requests", name, push)
			}
			if args := fmt.Sprint(s.With["build-args"]); !strings.Contains(args, "SERVICE=${{ matrix.service }}") {
				t.Errorf("job %s: build-args %q do not pass SERVICE", name, args)
			}
			if f := fmt.Sprint(s.With["file"]); f != "Dockerfile" {
				t.Errorf("job %s: file %q", name, f)
			}
		}
	}
	if !found {
		t.Error("no docker/build-push-action step")
	}
}
