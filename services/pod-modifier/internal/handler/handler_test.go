package handler_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
	"github.com/orbit-workbench/orbit-controller/services/pod-modifier/internal/handler"
	"github.com/orbit-workbench/orbit-controller/services/pod-modifier/internal/podsetting"
)

// memory is a Source backed by maps: the handler's only inputs.
type memory struct {
	namespaces map[string]*corev1.Namespace
	sets       map[string]*podsetting.Set
}

func (m memory) Namespace(_ context.Context, name string) (*corev1.Namespace, error) {
	if ns, ok := m.namespaces[name]; ok {
		return ns, nil
	}
	return nil, errors.New("namespace " + name + " not found")
}

func (m memory) Settings(ns string) *podsetting.Set {
	if s, ok := m.sets[ns]; ok {
		return s
	}
	return podsetting.NewSet(nil)
}

func fixture() memory {
	settings := []*orbitv1.PodSetting{
		{
			ObjectMeta: metav1.ObjectMeta{Name: "env", Namespace: "lake"},
			Spec: orbitv1.PodSettingSpec{
				PodSelector:       orbitv1.PodSelector{MatchLabels: map[string]string{"app": "nb"}},
				ContainerSelector: &orbitv1.ContainerSelector{Regex: "*"},
				Env:               []corev1.EnvVar{{Name: "A", Value: "1"}},
				NodeSelector:      map[string]string{"kubernetes.io/os": "linux"},
			},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: "lake"},
			Spec: orbitv1.PodSettingSpec{
				PodSelector: orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{{Key: "x", Operator: "Sometimes"}}},
			},
		},
	}
	return memory{
		namespaces: map[string]*corev1.Namespace{
			"lake-alice": {ObjectMeta: metav1.ObjectMeta{Name: "lake-alice", Labels: map[string]string{"orbit/team": "lake", "orbit/user": "alice"}}},
			"plain":      {ObjectMeta: metav1.ObjectMeta{Name: "plain"}},
		},
		sets: map[string]*podsetting.Set{"lake": podsetting.NewSet(settings)},
	}
}

func request(t testing.TB, op admissionv1.Operation, ns string, pod *corev1.Pod) *admissionv1.AdmissionRequest {
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return &admissionv1.AdmissionRequest{
		UID: "1", Operation: op, Namespace: ns,
		Kind:   metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Object: runtime.RawExtension{Raw: raw},
	}
}

func nbPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"app": "nb"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}},
	}
}

func apply(t *testing.T, req *admissionv1.AdmissionRequest, resp *admissionv1.AdmissionResponse) *corev1.Pod {
	t.Helper()
	out := req.Object.Raw
	if len(resp.Patch) > 0 {
		p, err := jsonpatch.DecodePatch(resp.Patch)
		if err != nil {
			t.Fatalf("invalid patch: %v", err)
		}
		if out, err = p.Apply(req.Object.Raw); err != nil {
			t.Fatalf("patch does not apply: %v", err)
		}
	}
	var pod corev1.Pod
	if err := json.Unmarshal(out, &pod); err != nil {
		t.Fatal(err)
	}
	return &pod
}

func TestAdmit(t *testing.T) {
	h := handler.New(fixture(), prometheus.NewRegistry(), 0)
	cases := []struct {
		name         string
		req          *admissionv1.AdmissionRequest
		wantPatched  bool
		wantWarnings int
		check        func(t *testing.T, p *corev1.Pod)
	}{
		{
			name: "create in a user namespace is patched and warns about the bad podsetting",
			req:  request(t, admissionv1.Create, "lake-alice", nbPod()), wantPatched: true, wantWarnings: 1,
			check: func(t *testing.T, p *corev1.Pod) {
				if p.Spec.NodeSelector["kubernetes.io/os"] != "linux" || p.Annotations["orbit/applied-podsettings"] != "env" {
					t.Errorf("pod %+v", p.ObjectMeta)
				}
			},
		},
		{name: "update is allowed unchanged", req: request(t, admissionv1.Update, "lake-alice", nbPod())},
		{name: "namespace without team", req: request(t, admissionv1.Create, "plain", nbPod())},
		{name: "unknown namespace warns", req: request(t, admissionv1.Create, "ghost", nbPod()), wantWarnings: 1},
		{name: "not a pod", req: func() *admissionv1.AdmissionRequest {
			r := request(t, admissionv1.Create, "lake-alice", nbPod())
			r.Kind.Kind = "Deployment"
			return r
		}()},
		{name: "undecodable pod warns", req: &admissionv1.AdmissionRequest{UID: "1", Operation: admissionv1.Create, Namespace: "lake-alice",
			Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Object: runtime.RawExtension{Raw: []byte(`{"spec":5}`)}}, wantWarnings: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := h.Admit(t.Context(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if !resp.Allowed {
				t.Fatal("pod not allowed")
			}
			if (len(resp.Patch) > 0) != tc.wantPatched {
				t.Errorf("patched %v, want %v: %s", len(resp.Patch) > 0, tc.wantPatched, resp.Patch)
			}
			if len(resp.Warnings) != tc.wantWarnings {
				t.Errorf("warnings %v, want %d", resp.Warnings, tc.wantWarnings)
			}
			if tc.check != nil {
				tc.check(t, apply(t, tc.req, resp))
			}
		})
	}
}

// A Pod from a newer API server keeps the fields this binary does not know: the handler's
// patch adds the PodSetting and removes nothing of them.
func TestAdmitKeepsUnknownFields(t *testing.T) {
	raw := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"nb-0","labels":{"app":"nb"},"futureMeta":"m"},` +
		`"spec":{"futureSpec":true,"containers":[{"name":"notebook","image":"jupyter","futureContainer":{"a":1}}]}}`)
	h := handler.New(fixture(), prometheus.NewRegistry(), 0)
	resp, err := h.Admit(t.Context(), &admissionv1.AdmissionRequest{
		UID: "1", Operation: admissionv1.Create, Namespace: "lake-alice",
		Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Object: runtime.RawExtension{Raw: raw},
	})
	if err != nil || len(resp.Patch) == 0 {
		t.Fatalf("Admit = %+v, %v: want a patch", resp, err)
	}
	p, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("patch %s: %v", resp.Patch, err)
	}
	var doc struct {
		Metadata struct {
			FutureMeta string `json:"futureMeta"`
		} `json:"metadata"`
		Spec struct {
			FutureSpec   bool              `json:"futureSpec"`
			NodeSelector map[string]string `json:"nodeSelector"`
			Containers   []struct {
				FutureContainer map[string]int  `json:"futureContainer"`
				Env             []corev1.EnvVar `json:"env"`
			} `json:"containers"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	c := doc.Spec.Containers[0]
	if doc.Metadata.FutureMeta != "m" || !doc.Spec.FutureSpec || c.FutureContainer["a"] != 1 {
		t.Errorf("unknown fields lost by patch %s: %s", resp.Patch, out)
	}
	if doc.Spec.NodeSelector["kubernetes.io/os"] != "linux" || len(c.Env) == 0 {
		t.Errorf("PodSetting not applied by patch %s: %s", resp.Patch, out)
	}
}
