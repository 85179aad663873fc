// Package render renders the chart through the Helm SDK exactly as `helm template` does, and
// gives the tests the objects, the hooks and the notes. It also holds the RESTClientGetter
// that points Helm at a test control plane.
package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// Release and Namespace are the names the render tests use (the README's install command).
const (
	Release   = "orbit-controller"
	Namespace = "orbit-system"
	// KubeVersion is the version of the test control plane.
	KubeVersion = "v1.37.2"
)

// Result is a rendered release.
type Result struct {
	Manifest string
	Objects  []*unstructured.Unstructured
	Hooks    []*unstructured.Unstructured
	Notes    string
}

// Chart renders the chart in dir with values, like `helm template --namespace ns name dir`.
func Chart(dir, release, namespace string, values map[string]any) (*Result, error) {
	chrt, err := loader.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", dir, err)
	}
	kv, err := chartutil.ParseKubeVersion(KubeVersion)
	if err != nil {
		return nil, err
	}
	cfg := &action.Configuration{
		Releases:     storage.Init(driver.NewMemory()),
		KubeClient:   &kubefake.PrintingKubeClient{Out: io.Discard},
		Capabilities: chartutil.DefaultCapabilities,
		Log:          func(string, ...any) {},
	}
	install := action.NewInstall(cfg)
	install.DryRun = true
	install.ClientOnly = true
	install.Replace = true
	install.IncludeCRDs = false
	install.ReleaseName = release
	install.Namespace = namespace
	install.KubeVersion = kv
	rel, err := install.Run(chrt, values)
	if err != nil {
		return nil, err
	}
	res := &Result{Manifest: rel.Manifest, Notes: rel.Info.Notes}
	if res.Objects, err = Decode(rel.Manifest); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	for _, h := range rel.Hooks {
		objs, err := Decode(h.Manifest)
		if err != nil {
			return nil, fmt.Errorf("decode hook %s: %w", h.Path, err)
		}
		res.Hooks = append(res.Hooks, objs...)
	}
	return res, nil
}

// Decode splits a multi-document YAML stream into objects, skipping empty documents.
func Decode(manifest string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	var out []*unstructured.Unstructured
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(obj) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}

// Values parses a YAML values document (the form of `helm install -f`).
func Values(doc string) (map[string]any, error) {
	vals := map[string]any{}
	if err := yaml.Unmarshal([]byte(doc), &vals); err != nil {
		return nil, fmt.Errorf("parse values: %w", err)
	}
	return vals, nil
}

// Find returns the object of kind and name, or nil.
func (r *Result) Find(kind, name string) *unstructured.Unstructured {
	for _, o := range r.Objects {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// All returns the objects of kind.
func (r *Result) All(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range r.Objects {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// Names returns the names of the objects of kind.
func (r *Result) Names(kind string) []string {
	var out []string
	for _, o := range r.All(kind) {
		out = append(out, o.GetName())
	}
	return out
}

// Typed converts obj into a typed client-go object, refusing fields the type does not have
// (a misspelt field would otherwise vanish silently). It fails for kinds client-go does not
// know (cert-manager, Prometheus operator).
func Typed(obj *unstructured.Unstructured) (runtime.Object, error) {
	gvk := obj.GroupVersionKind()
	typed, err := scheme.Scheme.New(gvk)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", gvk, obj.GetName(), err)
	}
	raw, err := json.Marshal(obj.Object)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(typed); err != nil {
		return nil, fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err)
	}
	return typed, nil
}

// Into converts obj into out (a pointer to a typed object), strictly like Typed.
func Into(obj *unstructured.Unstructured, out any) error {
	raw, err := json.Marshal(obj.Object)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%s %s: %w", obj.GetKind(), obj.GetName(), err)
	}
	return nil
}

// Known reports whether client-go's scheme knows the object's kind.
func Known(obj *unstructured.Unstructured) bool {
	return scheme.Scheme.Recognizes(schema.FromAPIVersionAndKind(obj.GetAPIVersion(), obj.GetKind()))
}
