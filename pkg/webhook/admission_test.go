package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	jsonpatchv5 "github.com/evanphx/json-patch/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/orbit-workbench/orbit-controller/pkg/metrics"
	"github.com/orbit-workbench/orbit-controller/pkg/webhook"
)

// labelHandler adds a label with a '/' in its key, so the patch must escape it (RFC 6901).
func labelHandler(_ context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return webhook.Allowed("not a pod: " + err.Error()), nil
	}
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels["orbit/touched"] = "yes"
	return webhook.PatchResponse(req.Object.Raw, &pod, []string{"touched"})
}

func review(t testing.TB, pod *corev1.Pod) []byte {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "u-1", Operation: admissionv1.Create, Namespace: "team-a",
			Object: runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func newRouter(reg prometheus.Registerer) *webhook.Router {
	r := webhook.NewRouter(zerolog.Nop(), webhook.NewMetrics(reg, "test"))
	r.Admit("/mutate", labelHandler)
	r.Admit("/panic", func(context.Context, *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
		panic("boom")
	})
	return r
}

func TestAdmissionRequests(t *testing.T) {
	valid := review(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"a": "b"}}})
	cases := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        []byte
		wantCode    int
		wantInBody  string
		// chunked: the request does not say its length, as with Transfer-Encoding: chunked.
		chunked bool
	}{
		{"valid review is patched", http.MethodPost, "/mutate", "application/json", valid, 200, `"uid":"u-1"`, false},
		{"empty body", http.MethodPost, "/mutate", "application/json", nil, 400, "empty body", false},
		{"not json", http.MethodPost, "/mutate", "application/json", []byte("{nope"), 400, "decode AdmissionReview", false},
		{"wrong api version", http.MethodPost, "/mutate", "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}`), 400, "want admission.k8s.io/v1 AdmissionReview", false},
		{"no request", http.MethodPost, "/mutate", "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), 400, "has no request", false},
		{"no uid", http.MethodPost, "/mutate", "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}`), 400, "no uid", false},
		{"wrong content type", http.MethodPost, "/mutate", "text/plain", valid, 400, "content type", false},
		{"oversized", http.MethodPost, "/mutate", "application/json", bytes.Repeat([]byte(" "), 2048), 400, "larger than 1024 bytes", false},
		{"oversized, length not said", http.MethodPost, "/mutate", "application/json", bytes.Repeat([]byte(" "), 2048), 400, "larger than 1024 bytes", true},
		{"valid, length not said", http.MethodPost, "/mutate", "application/json", valid, 200, `"uid":"u-1"`, true},
		{"GET not allowed", http.MethodGet, "/mutate", "", nil, 405, "", false},
		{"handler panic is a 500, not a crash", http.MethodPost, "/panic", "application/json", valid, 500, "handler panic", false},
		{"health", http.MethodGet, "/health", "", nil, 200, "ok", false},
	}
	reg := prometheus.NewRegistry()
	r := newRouter(reg)
	r.SetMaxBodyBytes(1024)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, bytes.NewReader(tc.body))
			if tc.chunked {
				req.ContentLength = -1
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, req)
			if rec.Code != tc.wantCode {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.wantCode, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), tc.wantInBody) {
				t.Errorf("body %q does not contain %q", rec.Body, tc.wantInBody)
			}
		})
	}
	if got, err := metrics.Sum(reg, "orbit_test_webhook_requests_total", "outcome", "bad_request"); err != nil || got != 8 {
		t.Errorf("bad_request count %v, want 8", got)
	}
}

func TestPatchResponseAppliesToOriginal(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"a": "b"}}}
	body := review(t, pod)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/mutate", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	newRouter(prometheus.NewRegistry()).ServeHTTP(rec, req)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out.Response == nil || !out.Response.Allowed || out.Response.UID != "u-1" {
		t.Fatalf("response %+v", out.Response)
	}
	if len(out.Response.Warnings) != 1 || out.Response.Warnings[0] != "touched" {
		t.Errorf("warnings %v", out.Response.Warnings)
	}
	if out.Response.PatchType == nil || *out.Response.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("patch type %v", out.Response.PatchType)
	}
	if !strings.Contains(string(out.Response.Patch), "orbit~1touched") {
		t.Errorf("patch %s does not escape '/' as ~1", out.Response.Patch)
	}
	raw, _ := json.Marshal(pod)
	p, err := jsonpatchv5.DecodePatch(out.Response.Patch)
	if err != nil {
		t.Fatal(err)
	}
	patched, err := p.Apply(raw)
	if err != nil {
		t.Fatal(err)
	}
	var got corev1.Pod
	if err := json.Unmarshal(patched, &got); err != nil {
		t.Fatal(err)
	}
	if got.Labels["orbit/touched"] != "yes" || got.Labels["a"] != "b" {
		t.Errorf("patched labels %v", got.Labels)
	}
}

// A value already encoded (json.RawMessage, as the pod-modifier hands over parts of the
// mutated Pod) is written as it is, not as a string or base64.
func TestEncodePatchRawValues(t *testing.T) {
	ops := []jsonpatch.Operation{
		{Operation: "add", Path: "/spec/volumes/6", Value: json.RawMessage(`{"name":"team-0","emptyDir":{}}`)},
		{Operation: "replace", Path: "/metadata/labels/a~1b", Value: json.RawMessage(`"x"`)},
		{Operation: "remove", Path: "/spec/nodeSelector"},
	}
	resp, err := webhook.PatchOpsResponse(ops, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"op":"add","path":"/spec/volumes/6","value":{"name":"team-0","emptyDir":{}}},` +
		`{"op":"replace","path":"/metadata/labels/a~1b","value":"x"},{"op":"remove","path":"/spec/nodeSelector"}]`
	if string(resp.Patch) != want {
		t.Errorf("patch\n%s\nwant\n%s", resp.Patch, want)
	}
}

// encodePatch must say exactly what the library's own encoding says, whatever the values.
func TestEncodePatchMatchesLibraryEncoding(t *testing.T) {
	docs := [][2]string{
		{`{"a":{"b/c":1,"x":[1,2,3]},"s":"<&>"}`, `{"a":{"b/c":2,"x":[1,3],"n":null},"s":"<&>","t":{"k":1e300,"m":12345678901234,"f":0.1}}`},
		{`{"metadata":{"labels":{"a":"b"}}}`, `{"metadata":{"labels":{"a":"b","orbit/x":"y"},"annotations":{"k~1":"v"}}}`},
		{`{"l":[{"n":"a"},{"n":"b"}]}`, `{"l":[{"n":"b"}],"z":[]}`},
	}
	for _, d := range docs {
		ops, err := jsonpatch.CreatePatch([]byte(d[0]), []byte(d[1]))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := webhook.PatchOpsResponse(ops, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(ops)
		if err != nil {
			t.Fatal(err)
		}
		var got, exp any
		if err := json.Unmarshal(resp.Patch, &got); err != nil {
			t.Fatalf("invalid JSON %s: %v", resp.Patch, err)
		}
		if err := json.Unmarshal(want, &exp); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, exp) {
			t.Errorf("encodePatch gave %s, the library %s", resp.Patch, want)
		}
		p, err := jsonpatchv5.DecodePatch(resp.Patch)
		if err != nil {
			t.Fatal(err)
		}
		out, err := p.Apply([]byte(d[0]))
		if err != nil {
			t.Fatal(err)
		}
		var a, b any
		_ = json.Unmarshal(out, &a)
		_ = json.Unmarshal([]byte(d[1]), &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("patch %s turns %s into %s, want %s", resp.Patch, d[0], out, d[1])
		}
	}
}
