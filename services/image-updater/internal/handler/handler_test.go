package handler

import (
	"context"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	jsonpatchv5 "github.com/evanphx/json-patch/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/orbit-workbench/orbit-controller/pkg/mirror"
)

const (
	host = "123456789012.dkr.ecr.us-west-2.amazonaws.com"
	h    = host + "/orbit-dev/"
	dig  = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// fakeReplications records requests; complete lists destinations the cache calls Complete.
type fakeReplications struct {
	mu       sync.Mutex
	complete map[string]bool
	requests [][2]string
}

func (f *fakeReplications) Complete(dst string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.complete[dst]
}

func (f *fakeReplications) Request(_ context.Context, src, dst string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, [2]string{src, dst})
}

func (f *fakeReplications) got() [][2]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := append([][2]string(nil), f.requests...)
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

func newHandler(t testing.TB, cfg Config, repl Replications) *Handler {
	t.Helper()
	if cfg.Policy.RepoHost == "" {
		cfg.Policy = mirror.Policy{RepoHost: host, RepoPrefix: "orbit-dev", Backend: mirror.BackendCodeBuild}
	}
	if cfg.Rewrite == "" {
		cfg.Rewrite = RewriteAlways
	}
	hd, err := New(cfg, repl, prometheus.NewRegistry(), "image-updater", 0)
	if err != nil {
		t.Fatal(err)
	}
	return hd
}

func pod(containers, initContainers []corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "team-a", Labels: map[string]string{"app": "x"}},
		Spec:       corev1.PodSpec{Containers: containers, InitContainers: initContainers},
	}
}

func raw(t testing.TB, obj any) []byte {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func request(t testing.TB, op admissionv1.Operation, obj, old []byte) *admissionv1.AdmissionRequest {
	t.Helper()
	req := &admissionv1.AdmissionRequest{
		UID:       "1",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: "team-a",
		Operation: op,
		Object:    runtime.RawExtension{Raw: obj},
	}
	if old != nil {
		req.OldObject = runtime.RawExtension{Raw: old}
	}
	return req
}

// apply applies the response's patch to the submitted object and decodes the result.
func apply(t testing.TB, resp *admissionv1.AdmissionResponse, obj []byte) []byte {
	t.Helper()
	if !resp.Allowed {
		t.Fatalf("not allowed: %+v", resp.Result)
	}
	if len(resp.Patch) == 0 {
		return obj
	}
	if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("patch type %v", resp.PatchType)
	}
	p, err := jsonpatchv5.DecodePatch(resp.Patch)
	if err != nil {
		t.Fatalf("decode patch %s: %v", resp.Patch, err)
	}
	out, err := p.Apply(obj)
	if err != nil {
		t.Fatalf("apply patch %s: %v", resp.Patch, err)
	}
	return out
}

func decodePod(t testing.TB, b []byte) *corev1.Pod {
	t.Helper()
	var p corev1.Pod
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

func TestAdmit(t *testing.T) {
	c := func(name, image string) corev1.Container { return corev1.Container{Name: name, Image: image} }
	tests := []struct {
		name      string
		cfg       Config
		complete  map[string]bool
		op        admissionv1.Operation
		namespace string
		dryRun    bool
		in        *corev1.Pod
		old       *corev1.Pod
		want      *corev1.Pod // nil: no patch
		requests  [][2]string
		warning   string
	}{
		{
			name: "containers and init containers rewritten, originals recorded",
			in:   pod([]corev1.Container{c("app", "nginx:1.19"), c("side", "quay.io/jetstack/cert-manager-controller:v1.3.2")}, []corev1.Container{c("init", "public.ecr.aws/nginx/nginx:latest")}),
			want: func() *corev1.Pod {
				p := pod([]corev1.Container{c("app", h+"nginx:1.19"), c("side", h+"quay.io/jetstack/cert-manager-controller:v1.3.2")}, []corev1.Container{c("init", h+"nginx:latest")})
				p.Annotations = map[string]string{
					AnnotationPrefix + "app":  "nginx:1.19",
					AnnotationPrefix + "side": "quay.io/jetstack/cert-manager-controller:v1.3.2",
					AnnotationPrefix + "init": "public.ecr.aws/nginx/nginx:latest",
				}
				return p
			}(),
			requests: [][2]string{
				{"nginx:1.19", h + "nginx:1.19"},
				{"public.ecr.aws/nginx/nginx:latest", h + "nginx:latest"},
				{"quay.io/jetstack/cert-manager-controller:v1.3.2", h + "quay.io/jetstack/cert-manager-controller:v1.3.2"},
			},
		},
		{
			name: "existing annotations kept, digest mapped to a tag for codebuild",
			in: func() *corev1.Pod {
				p := pod([]corev1.Container{c("app", "nginx@"+dig), c("mirrored", h+"foo:1")}, nil)
				p.Annotations = map[string]string{"kubernetes.io/psp": "x"}
				return p
			}(),
			want: func() *corev1.Pod {
				p := pod([]corev1.Container{c("app", h+"nginx:"+mirror.DigestTag(dig)), c("mirrored", h+"foo:1")}, nil)
				p.Annotations = map[string]string{"kubernetes.io/psp": "x", AnnotationPrefix + "app": "nginx@" + dig}
				return p
			}(),
			requests: [][2]string{{"nginx@" + dig, h + "nginx:" + mirror.DigestTag(dig)}},
		},
		{
			name: "already in the mirror: no patch",
			in:   pod([]corev1.Container{c("app", h+"nginx:1.19")}, nil),
		},
		{
			name: "another account's ECR left alone without external repos",
			in:   pod([]corev1.Container{c("app", "602401143452.dkr.ecr.us-east-2.amazonaws.com/eks/coredns:v1.8.0")}, nil),
		},
		{
			name:      "excluded namespace",
			cfg:       Config{Exclusions: mustExclusions(t, []string{"kube-*"}, nil)},
			namespace: "kube-system",
			in:        pod([]corev1.Container{c("app", "nginx")}, nil),
		},
		{
			name: "excluded image, the other rewritten",
			cfg:  Config{Exclusions: mustExclusions(t, nil, []string{"quay.io/*"})},
			in:   pod([]corev1.Container{c("a", "quay.io/x/y:1"), c("b", "nginx")}, nil),
			want: func() *corev1.Pod {
				p := pod([]corev1.Container{c("a", "quay.io/x/y:1"), c("b", h+"nginx")}, nil)
				p.Annotations = map[string]string{AnnotationPrefix + "b": "nginx"}
				return p
			}(),
			requests: [][2]string{{"nginx", h + "nginx"}},
		},
		{
			name:   "dry run rewrites but requests nothing",
			dryRun: true,
			in:     pod([]corev1.Container{c("app", "nginx")}, nil),
			want: func() *corev1.Pod {
				p := pod([]corev1.Container{c("app", h+"nginx")}, nil)
				p.Annotations = map[string]string{AnnotationPrefix + "app": "nginx"}
				return p
			}(),
		},
		{
			name: "update that keeps the images: no patch, even for an image outside the mirror",
			op:   admissionv1.Update,
			old:  pod([]corev1.Container{c("app", "nginx")}, nil),
			in: func() *corev1.Pod {
				p := pod([]corev1.Container{c("app", "nginx")}, nil)
				p.Labels["new"] = "label"
				return p
			}(),
		},
		{
			name: "update that changes an image: only that one rewritten",
			op:   admissionv1.Update,
			old:  pod([]corev1.Container{c("app", h+"nginx"), c("keep", "busybox")}, nil),
			in: func() *corev1.Pod {
				p := pod([]corev1.Container{c("app", "nginx:1.26"), c("keep", "busybox")}, nil)
				p.Annotations = map[string]string{AnnotationPrefix + "app": "nginx"}
				return p
			}(),
			want: func() *corev1.Pod {
				p := pod([]corev1.Container{c("app", h+"nginx:1.26"), c("keep", "busybox")}, nil)
				p.Annotations = map[string]string{AnnotationPrefix + "app": "nginx:1.26"}
				return p
			}(),
			requests: [][2]string{{"nginx:1.26", h + "nginx:1.26"}},
		},
		{
			name:     "whenReplicated: complete rewritten, the other kept and requested",
			cfg:      Config{Rewrite: RewriteWhenReplicated},
			complete: map[string]bool{h + "nginx:1": true},
			in:       pod([]corev1.Container{c("a", "nginx:1"), c("b", "redis:7")}, nil),
			want: func() *corev1.Pod {
				p := pod([]corev1.Container{c("a", h+"nginx:1"), c("b", "redis:7")}, nil)
				p.Annotations = map[string]string{AnnotationPrefix + "a": "nginx:1"}
				return p
			}(),
			requests: [][2]string{{"nginx:1", h + "nginx:1"}, {"redis:7", h + "redis:7"}},
		},
		{
			name:     "whenReplicated dry run requests nothing",
			cfg:      Config{Rewrite: RewriteWhenReplicated},
			dryRun:   true,
			complete: map[string]bool{},
			in:       pod([]corev1.Container{c("b", "redis:7")}, nil),
		},
		{
			name:    "invalid image kept with a warning",
			in:      pod([]corev1.Container{c("a", "Not:A:Valid@Image")}, nil),
			warning: "container a not rewritten",
		},
		{
			name: "delete is not looked at",
			op:   admissionv1.Delete,
			in:   pod([]corev1.Container{c("a", "nginx")}, nil),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repl := &fakeReplications{complete: tt.complete}
			hd := newHandler(t, tt.cfg, repl)
			op := tt.op
			if op == "" {
				op = admissionv1.Create
			}
			in := raw(t, tt.in)
			var old []byte
			if tt.old != nil {
				old = raw(t, tt.old)
			}
			req := request(t, op, in, old)
			if tt.namespace != "" {
				req.Namespace = tt.namespace
			}
			req.DryRun = &tt.dryRun
			resp, err := hd.Admit(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			if tt.warning != "" {
				if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], tt.warning) {
					t.Errorf("warnings %q, want one containing %q", resp.Warnings, tt.warning)
				}
			} else if len(resp.Warnings) > 0 {
				t.Errorf("unexpected warnings %q", resp.Warnings)
			}
			out := apply(t, resp, in)
			switch {
			case tt.want == nil && len(resp.Patch) > 0:
				t.Errorf("patch %s, want none", resp.Patch)
			case tt.want != nil:
				if got := decodePod(t, out); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("patched pod\n got %+v\nwant %+v", got, tt.want)
				}
			}
			if got := repl.got(); !reflect.DeepEqual(got, tt.requests) && (len(got) > 0 || len(tt.requests) > 0) {
				t.Errorf("requests %q, want %q", got, tt.requests)
			}
		})
	}
}

func mustExclusions(t *testing.T, namespaces, images []string) *mirror.Exclusions {
	t.Helper()
	e, err := mirror.NewExclusions(namespaces, images)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The patch touches images and annotations only: fields this build does not know, numbers
// and quantities as written all survive.
func TestAdmitPatchTouchesOnlyImagesAndAnnotations(t *testing.T) {
	in := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"team-a","labels":{"a/b":"c"}},` +
		`"spec":{"futureField":{"x":[1,2.50,3e2]},"containers":[{"name":"app","image":"nginx","resources":{"limits":{"cpu":"1000m"}},` +
		`"ports":[{"containerPort":8080}]}],"nodeSelector":{"kubernetes.io/os":"linux"}}}`)
	hd := newHandler(t, Config{}, &fakeReplications{})
	resp, err := hd.Admit(t.Context(), request(t, admissionv1.Create, in, nil))
	if err != nil {
		t.Fatal(err)
	}
	out := apply(t, resp, in)
	var got, want map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(in, &want); err != nil {
		t.Fatal(err)
	}
	want["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["image"] = h + "nginx"
	want["metadata"].(map[string]any)["annotations"] = map[string]any{AnnotationPrefix + "app": "nginx"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("patched\n got %s\nwant %v", out, want)
	}
	var ops []map[string]any
	if err := json.Unmarshal(resp.Patch, &ops); err != nil {
		t.Fatal(err)
	}
	if len(ops) != 2 {
		t.Errorf("patch %s: want two operations (image, annotations)", resp.Patch)
	}
}

func TestAdmitCountsRewrites(t *testing.T) {
	reg := prometheus.NewRegistry()
	hd, err := New(Config{Policy: mirror.Policy{RepoHost: host, RepoPrefix: "orbit-dev"}, Rewrite: RewriteAlways}, &fakeReplications{}, reg, "image-updater", 0)
	if err != nil {
		t.Fatal(err)
	}
	in := raw(t, pod([]corev1.Container{{Name: "a", Image: "nginx"}, {Name: "b", Image: "redis"}}, nil))
	if _, err := hd.Admit(t.Context(), request(t, admissionv1.Create, in, nil)); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(hd.rewritten); got != 2 {
		t.Errorf("images_rewritten_total = %v, want 2", got)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	repl := &fakeReplications{}
	if _, err := New(Config{Policy: mirror.Policy{}, Rewrite: RewriteAlways}, repl, prometheus.NewRegistry(), "x", 0); err == nil {
		t.Error("empty repo host accepted")
	}
	if _, err := New(Config{Policy: mirror.Policy{RepoHost: host}, Rewrite: "sometimes"}, repl, prometheus.NewRegistry(), "x", 0); err == nil {
		t.Error("unknown policy accepted")
	}
}

// BenchmarkAdmit: the handler alone on a Deployment Pod with three images to rewrite.
func BenchmarkAdmit(b *testing.B) {
	hd := newHandler(b, Config{}, &fakeReplications{complete: map[string]bool{}})
	p := pod([]corev1.Container{
		{Name: "web", Image: "nginx:1.25.3", Env: []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}},
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}},
		{Name: "metrics", Image: "public.ecr.aws/bitnami/prometheus-exporter:0.15.0", Args: []string{"--web.listen-address=:9113"}},
	}, []corev1.Container{{Name: "migrate", Image: "quay.io/org/migrations:v2.4.1", Command: []string{"/migrate", "up"}}})
	p.Annotations = map[string]string{"prometheus.io/scrape": "true"}
	req := request(b, admissionv1.Create, raw(b, p), nil)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := hd.Admit(b.Context(), req)
		if err != nil || len(resp.Patch) == 0 {
			b.Fatal(resp, err)
		}
	}
}
