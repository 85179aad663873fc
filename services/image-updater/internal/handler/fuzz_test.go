package handler

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	jsonpatchv5 "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/orbit-workbench/orbit-controller/pkg/mirror"
)

// FuzzAdmit: whatever the object (and old object), Admit never panics, never fails, always
// allows, and any patch it returns is a valid JSON Patch that applies to the submitted object
// and yields a Pod whose every container image it changed is in the mirror, with the original
// recorded.
func FuzzAdmit(f *testing.F) {
	c := func(name, image string) corev1.Container { return corev1.Container{Name: name, Image: image} }
	seeds := [][]byte{
		raw(f, pod([]corev1.Container{c("app", "nginx"), c("b", "quay.io/x/y@"+dig)}, []corev1.Container{c("init", "busybox:1.36")})),
		raw(f, pod([]corev1.Container{c("app", h+"nginx")}, nil)),
		[]byte(`{"metadata":null,"spec":{"containers":[{"name":"a/b~c","image":"nginx"}]}}`),
		[]byte(`{"metadata":{"annotations":null},"spec":{"containers":[{"name":"a","image":"nginx"}]}}`),
		[]byte(`{"metadata":{"annotations":{"original-container-image/a":"x"}},"spec":{"containers":[{"name":"a","image":"nginx"},{"name":"a","image":"redis"}]}}`),
		[]byte(`{"spec":{"containers":"x","initContainers":[null,1,"s",{"name":1,"image":2}]}}`),
		[]byte(`{"spec":{"containers":[{"name":"a","image":"localhost:5000/a:1"}]}}`),
		[]byte(`null`),
		[]byte(`[]`),
		[]byte(`{"a":1}{"b":2}`),
		[]byte(`{"spec":{"containers":[{"name":"a","image":"nginx","x":1e400}]}}`),
	}
	for _, s := range seeds {
		for op := range uint8(4) {
			f.Add(s, op)
		}
	}
	repl := &fakeReplications{complete: map[string]bool{h + "nginx": true}}
	always := newHandler(f, Config{}, repl)
	copyWhenReplicated := newHandler(f, Config{
		Policy:  mirror.Policy{RepoHost: host, RepoPrefix: "orbit-dev", Backend: mirror.BackendCopy, ReplicateExternalRepos: true},
		Rewrite: RewriteWhenReplicated,
	}, repl)
	f.Fuzz(func(t *testing.T, obj []byte, flags uint8) {
		hd := always
		if flags&1 != 0 {
			hd = copyWhenReplicated
		}
		op := admissionv1.Create
		var old []byte
		if flags&2 != 0 {
			op, old = admissionv1.Update, []byte(`{"spec":{"containers":[{"name":"app","image":"nginx"}]}}`)
		}
		req := request(t, op, obj, old)
		req.Object = runtime.RawExtension{Raw: obj}
		resp, err := hd.Admit(t.Context(), req)
		if err != nil {
			t.Fatalf("Admit failed: %v", err)
		}
		if resp == nil || !resp.Allowed {
			t.Fatalf("response %+v", resp)
		}
		if len(resp.Patch) == 0 {
			return
		}
		p, err := jsonpatchv5.DecodePatch(resp.Patch)
		if err != nil {
			t.Fatalf("invalid patch %s: %v", resp.Patch, err)
		}
		out, err := p.Apply(obj)
		if err != nil {
			t.Fatalf("patch %s does not apply to %s: %v", resp.Patch, obj, err)
		}
		before, err := parsePod(obj)
		if err != nil {
			t.Fatalf("patched an object that does not decode: %v", err)
		}
		after, err := parsePod(out)
		if err != nil {
			t.Fatalf("patched object does not decode: %v", err)
		}
		if a, b := strip(t, obj), strip(t, out); !reflect.DeepEqual(a, b) {
			t.Fatalf("patch %s changes more than images and annotations:\n%v\n%v", resp.Patch, a, b)
		}
		var annotations map[string]json.RawMessage
		_ = json.Unmarshal(after.meta["annotations"], &annotations)
		beforeImages, afterImages := before.images(), after.images()
		for key, img := range afterImages {
			if img == beforeImages[key] {
				continue
			}
			if !strings.HasPrefix(img, host+"/") {
				t.Fatalf("%s rewritten to %q, outside the mirror", key, img)
			}
			if err := mirror.ValidateReference(img); err != nil {
				t.Fatalf("%s rewritten to an invalid reference: %v", key, err)
			}
			_, name, _ := strings.Cut(key, "/")
			if annotations[AnnotationPrefix+name] == nil {
				t.Fatalf("%s rewritten without recording the original; annotations %v", key, annotations)
			}
		}
	})
}

// strip decodes a Pod generically without its annotations and container images.
func strip(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	if meta, ok := doc["metadata"].(map[string]any); ok {
		delete(meta, "annotations")
		if len(meta) == 0 {
			delete(doc, "metadata")
		}
	} else {
		delete(doc, "metadata") // replaced by one holding annotations
	}
	if spec, ok := doc["spec"].(map[string]any); ok {
		for _, list := range containerLists {
			items, _ := spec[list].([]any)
			for _, item := range items {
				if c, ok := item.(map[string]any); ok {
					delete(c, "image")
				}
			}
		}
	}
	return doc
}
