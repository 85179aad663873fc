package handler_test

import (
	"encoding/json"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/orbit-workbench/orbit-controller/services/pod-modifier/internal/handler"
)

// FuzzAdmit: whatever Pod JSON arrives, the handler allows it, never panics, and any patch it
// answers applies to the submitted object and yields a decodable Pod.
func FuzzAdmit(f *testing.F) {
	seed := func(p *corev1.Pod) {
		b, _ := json.Marshal(p)
		f.Add(b)
	}
	seed(nbPod())
	seed(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "nb", "a/b~c": "d"}}})
	f.Add([]byte(`{"metadata":{"labels":{"app":"nb"}},"spec":{"containers":[{"name":"c","env":null}]}}`))
	f.Add([]byte(`{"metadata":{"labels":{"app":"nb"},"annotations":{"orbit/applied-podsettings":"env,,env"}},"spec":{"initContainers":[{"name":"i"}]}}`))
	f.Add([]byte(`{"metadata":{"labels":{"app":"nb"}},"spec":{"nodeSelector":{"kubernetes.io/os":"windows"}}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{}`))
	h := handler.New(fixture(), prometheus.NewRegistry(), 0)
	f.Fuzz(func(t *testing.T, raw []byte) {
		req := &admissionv1.AdmissionRequest{
			UID: "1", Operation: admissionv1.Create, Namespace: "lake-alice",
			Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Object: runtime.RawExtension{Raw: raw},
		}
		resp, err := h.Admit(t.Context(), req)
		if err != nil {
			t.Fatalf("handler error: %v", err)
		}
		if !resp.Allowed {
			t.Fatal("pod not allowed")
		}
		if len(resp.Patch) == 0 {
			return
		}
		p, err := jsonpatch.DecodePatch(resp.Patch)
		if err != nil {
			t.Fatalf("invalid patch %s: %v", resp.Patch, err)
		}
		out, err := p.Apply(raw)
		if err != nil {
			t.Fatalf("patch %s does not apply to %s: %v", resp.Patch, raw, err)
		}
		var pod corev1.Pod
		if err := json.Unmarshal(out, &pod); err != nil {
			t.Fatalf("patched object is not a Pod: %v", err)
		}
		if pod.Annotations["orbit/applied-podsettings"] == "" {
			t.Fatalf("patched without recording the applied PodSettings: %s", out)
		}
	})
}
