package chart

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/orbit-workbench/orbit-controller/e2e/internal/render"
	"github.com/orbit-workbench/orbit-controller/e2e/internal/repo"
)

const ns = render.Namespace

// mirror makes the optional services' required values present.
const mirror = `
global:
  imageReplication:
    repoHost: 123456789012.dkr.ecr.us-west-2.amazonaws.com
    repoPrefix: orbit-dev
`

// allEnabled turns every service on.
const allEnabled = mirror + `
image-updater: {enabled: true}
image-replicator: {enabled: true}
`

// values merges YAML documents (later ones win, maps merged key by key).
func values(t testing.TB, docs ...string) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, d := range docs {
		v, err := render.Values(d)
		if err != nil {
			t.Fatalf("values %q: %v", d, err)
		}
		merge(out, v)
	}
	return out
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

func renderChart(t testing.TB, docs ...string) *render.Result {
	t.Helper()
	r, err := render.Chart(repo.ChartDir(t), render.Release, ns, values(t, docs...))
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return r
}

func full(name string) string { return render.Release + "-" + name }

func deployment(t testing.TB, r *render.Result, name string) *appsv1.Deployment {
	t.Helper()
	obj := r.Find("Deployment", name)
	if obj == nil {
		t.Fatalf("no Deployment %s; have %v", name, r.Names("Deployment"))
	}
	var d appsv1.Deployment
	if err := render.Into(obj, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

func container(t testing.TB, d *appsv1.Deployment, name string) corev1.Container {
	t.Helper()
	for _, c := range append(slices.Clone(d.Spec.Template.Spec.InitContainers), d.Spec.Template.Spec.Containers...) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("Deployment %s has no container %s", d.Name, name)
	return corev1.Container{}
}

func containerNames(d *appsv1.Deployment) []string {
	var out []string
	for _, c := range d.Spec.Template.Spec.Containers {
		out = append(out, c.Name)
	}
	return out
}

// flag returns the value of --name=value in args, and whether the flag is there (a bare
// --name has the value "").
func flag(args []string, name string) (string, bool) {
	for _, a := range args {
		if a == "--"+name {
			return "", true
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func wantFlag(t testing.TB, c corev1.Container, name, want string) {
	t.Helper()
	got, ok := flag(c.Args, name)
	if !ok {
		t.Errorf("container %s: no --%s in %q", c.Name, name, c.Args)
		return
	}
	if got != want {
		t.Errorf("container %s: --%s=%q, want %q", c.Name, name, got, want)
	}
}

func noFlag(t testing.TB, c corev1.Container, name string) {
	t.Helper()
	if v, ok := flag(c.Args, name); ok {
		t.Errorf("container %s: unexpected --%s=%q", c.Name, name, v)
	}
}

// rules returns the rules of the (Cluster)Role of that name.
func rules(t testing.TB, r *render.Result, kind, name string) []map[string]any {
	t.Helper()
	obj := r.Find(kind, name)
	if obj == nil {
		t.Fatalf("no %s %s; have %v", kind, name, r.Names(kind))
	}
	raw, _, _ := unstructured.NestedSlice(obj.Object, "rules")
	out := make([]map[string]any, 0, len(raw))
	for _, x := range raw {
		out = append(out, x.(map[string]any))
	}
	return out
}

// grants reports whether rules allow verb on group/resource (and name, if the rule names any).
func grants(rules []map[string]any, verb, group, resource, name string) bool {
	for _, r := range rules {
		if !has(r["verbs"], verb) || !has(r["apiGroups"], group) || !has(r["resources"], resource) {
			continue
		}
		names, ok := r["resourceNames"].([]any)
		if !ok || len(names) == 0 || has(r["resourceNames"], name) {
			return true
		}
	}
	return false
}

func has(list any, s string) bool {
	l, _ := list.([]any)
	for _, x := range l {
		if x == s || x == "*" {
			return true
		}
	}
	return false
}
