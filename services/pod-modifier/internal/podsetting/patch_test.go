package podsetting

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	gojson "github.com/goccy/go-json"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
	"github.com/orbit-workbench/orbit-controller/services/pod-modifier/internal/benchdata"
)

// A hand-written original (as a client may send it: no resources, no status, no
// creationTimestamp) with keys that need RFC 6901 escaping everywhere a map is touched.
const handWrittenPod = `{
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {
    "name": "mynb-0", "namespace": "lake-alice",
    "labels": {"app": "jupyter", "app.kubernetes.io/name": "nb"},
    "annotations": {"example.com/a~b": "1"}
  },
  "spec": {
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "initContainers": [{"name": "init", "image": "busybox"}],
    "containers": [{"name": "notebook", "image": "jupyter:1", "env": [{"name": "A", "value": "1"}]}]
  }
}`

func TestPatchRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		original string
		spec     func(*orbitv1.PodSettingSpec)
		check    func(t *testing.T, p *corev1.Pod)
	}{
		{
			name:     "keys with slash and tilde in nodeSelector, labels and annotations",
			original: handWrittenPod,
			spec: func(s *orbitv1.PodSettingSpec) {
				s.NodeSelector = map[string]string{"kubernetes.io/os": "windows", "node.kubernetes.io/instance-type": "g4dn.xlarge", "odd~key/x": "1"}
				s.Labels = map[string]string{"app.kubernetes.io/name": "notebook", "orbit/gpu": "true"}
				s.Annotations = map[string]string{"example.com/a~b": "2", "x/y": "z"}
			},
			check: func(t *testing.T, p *corev1.Pod) {
				if p.Spec.NodeSelector["kubernetes.io/os"] != "windows" || p.Spec.NodeSelector["odd~key/x"] != "1" ||
					p.Labels["app.kubernetes.io/name"] != "notebook" || p.Annotations["example.com/a~b"] != "2" {
					t.Errorf("patched pod lacks the escaped keys: %+v %+v %+v", p.Spec.NodeSelector, p.Labels, p.Annotations)
				}
			},
		},
		{
			name:     "maps created where the original has none",
			original: `{"metadata":{"name":"p","labels":{"app":"jupyter"}},"spec":{"containers":[{"name":"notebook","image":"i"}]}}`,
			spec: func(s *orbitv1.PodSettingSpec) {
				s.NodeSelector = map[string]string{"kubernetes.io/arch": "arm64"}
				s.Annotations = map[string]string{"a/b": "c"}
			},
		},
		{
			name:     "container fields the original omits",
			original: handWrittenPod,
			spec: func(s *orbitv1.PodSettingSpec) {
				s.ContainerSelector = &orbitv1.ContainerSelector{Regex: "*"}
				s.Resources.Limits = corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")}
				s.VolumeMounts = []corev1.VolumeMount{{Name: "efs", MountPath: "/efs"}}
				s.Volumes = []corev1.Volume{{Name: "efs", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
				s.Env = []corev1.EnvVar{env("A", "2"), env("B", "3")}
				s.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"stop"}}}}
			},
			check: func(t *testing.T, p *corev1.Pod) {
				c := p.Spec.Containers[0]
				if q := c.Resources.Limits["nvidia.com/gpu"]; q.String() != "1" || len(c.Env) != 4 || c.Env[0].Value != "2" {
					t.Errorf("patched container = %+v", c)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in corev1.Pod
			if err := json.Unmarshal([]byte(tt.original), &in); err != nil {
				t.Fatal(err)
			}
			res := Apply(&in, userNamespace(), []*orbitv1.PodSetting{setting("ps", tt.spec)})
			if !res.Changed() {
				t.Fatalf("nothing applied: %+v", res)
			}
			got := applyPatch(t, []byte(tt.original), res.Pod)
			requireSamePod(t, "patched original", got, res.Pod)
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}
}

func TestPatchUnchanged(t *testing.T) {
	p := notebookPod()
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := Patch(raw, p.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 0 {
		t.Errorf("Patch of an unchanged pod = %v, want no operation", ops)
	}
}

func TestPatchBadOriginal(t *testing.T) {
	_, err := Patch([]byte(`{"metadata":`), notebookPod())
	if err == nil || !strings.Contains(err.Error(), "diff pod lake-alice/mynb-0") {
		t.Errorf("Patch error = %v, want one naming the pod", err)
	}
}

// Patch encodes the mutated Pod with goccy/go-json so that its bytes equal what the API server
// sent wherever nothing changed (the API server encodes with encoding/json): a difference
// would not make a patch wrong, only larger and slower. Decoding must agree too.
func TestFastJSONMatchesEncodingJSON(t *testing.T) {
	pods := []*corev1.Pod{notebookPod(), benchPod(), benchdata.NotebookPod("lake-alice")}
	var hand corev1.Pod
	if err := json.Unmarshal([]byte(handWrittenPod), &hand); err != nil {
		t.Fatal(err)
	}
	pods = append(pods, &hand)
	for _, p := range pods {
		std, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		fast, err := gojson.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(std, fast) {
			t.Errorf("pod %s: goccy/go-json wrote\n%s\nencoding/json\n%s", p.Name, fast, std)
		}
		var back corev1.Pod
		if err := gojson.Unmarshal(std, &back); err != nil {
			t.Fatal(err)
		}
		requireSamePod(t, "decoded by goccy/go-json", &back, p)
	}
}
