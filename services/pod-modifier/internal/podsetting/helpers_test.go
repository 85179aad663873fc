package podsetting

import (
	"encoding/json"
	"strings"
	"testing"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
)

// Fixtures shared by the tests: a notebook Pod in alice's user space of team lake.

const (
	teamNS     = "lake"
	userNS     = "lake-alice"
	nbImage    = "jupyter/scipy-notebook:2024.1"
	pxImage    = "envoyproxy/envoy:v1.30"
	initImg    = "busybox:1.36"
	aliceEmail = "alice@example.com"
)

func userNamespace() *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:        userNS,
		Labels:      map[string]string{"orbit/space": "user", LabelTeam: teamNS, LabelUser: "alice", "orbit/env": "dev"},
		Annotations: map[string]string{AnnotationOwner: aliceEmail},
	}}
}

func teamNamespace() *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   teamNS,
		Labels: map[string]string{"orbit/space": "team", LabelTeam: teamNS, "orbit/env": "dev"},
	}}
}

func notebookPod() *corev1.Pod {
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "mynb-0", Namespace: userNS,
			Labels:      map[string]string{"app": "jupyter", LabelNotebookName: "mynb", "target": "proxy"},
			Annotations: map[string]string{"kubectl.kubernetes.io/default-container": "notebook"},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: "default-editor",
			InitContainers:     []corev1.Container{{Name: "init-home", Image: initImg}},
			Containers: []corev1.Container{
				{
					Name: "notebook", Image: nbImage,
					Env:          []corev1.EnvVar{env("HOME", "/home/jovyan"), env("TZ", "UTC")},
					VolumeMounts: []corev1.VolumeMount{{Name: "home", MountPath: "/home/jovyan"}, {Name: "dshm", MountPath: "/dev/shm"}},
					Resources: corev1.ResourceRequirements{
						Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi")},
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
					},
				},
				{Name: "proxy", Image: pxImage},
			},
			Volumes: []corev1.Volume{
				{Name: "home", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "mynb-home"}}},
				{Name: "dshm", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
			},
		},
	}
}

func env(name, value string) corev1.EnvVar { return corev1.EnvVar{Name: name, Value: value} }

// setting builds a PodSetting of team lake selecting app=jupyter, changed by mods.
func setting(name string, mods ...func(*orbitv1.PodSettingSpec)) *orbitv1.PodSetting {
	ps := &orbitv1.PodSetting{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: teamNS, Labels: map[string]string{"orbit/space": "team"}},
		Spec: orbitv1.PodSettingSpec{
			PodSelector: orbitv1.PodSelector{MatchLabels: map[string]string{"app": "jupyter"}},
		},
	}
	for _, m := range mods {
		m(&ps.Spec)
	}
	return ps
}

func regex(r string) func(*orbitv1.PodSettingSpec) {
	return func(s *orbitv1.PodSettingSpec) { s.ContainerSelector = &orbitv1.ContainerSelector{Regex: r} }
}

func jsonPath(p string) func(*orbitv1.PodSettingSpec) {
	return func(s *orbitv1.PodSettingSpec) { s.ContainerSelector = &orbitv1.ContainerSelector{JSONPath: p} }
}

func selector(sel orbitv1.PodSelector) func(*orbitv1.PodSettingSpec) {
	return func(s *orbitv1.PodSettingSpec) { s.PodSelector = sel }
}

func expr(key, op string, values ...string) orbitv1.SelectorRequirement {
	return orbitv1.SelectorRequirement{Key: key, Operator: op, Values: values}
}

// injected appends what every chosen container gets from one PodSetting when it has no such
// variables yet.
func injected(c *corev1.Container, userSpace string) {
	c.Env = append(c.Env, env(EnvUserSpace, userSpace), env(EnvImage, c.Image))
}

func container(p *corev1.Pod, name string) *corev1.Container {
	for i := range p.Spec.InitContainers {
		if p.Spec.InitContainers[i].Name == name {
			return &p.Spec.InitContainers[i]
		}
	}
	for i := range p.Spec.Containers {
		if p.Spec.Containers[i].Name == name {
			return &p.Spec.Containers[i]
		}
	}
	panic("no container " + name)
}

// requireSamePod fails with the JSON Patch from want to got, which reads better than two
// dumps of a Pod.
func requireSamePod(t *testing.T, what string, got, want *corev1.Pod) {
	t.Helper()
	if equality.Semantic.DeepEqual(got, want) {
		return
	}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	ops, err := Patch(wj, got)
	if err != nil {
		t.Fatalf("%s: pods differ and diff failed: %v\ngot:  %s\nwant: %s", what, err, gj, wj)
	}
	diff, _ := json.MarshalIndent(ops, "", "  ")
	t.Fatalf("%s: pods differ; patch from want to got:\n%s\ngot:  %s\nwant: %s", what, diff, gj, wj)
}

// applyPatch applies a patch from Patch to the original document with an independent JSON
// Patch implementation and decodes the outcome.
func applyPatch(t *testing.T, original []byte, mutated *corev1.Pod) *corev1.Pod {
	t.Helper()
	var out corev1.Pod
	if err := json.Unmarshal(applyPatchJSON(t, original, mutated), &out); err != nil {
		t.Fatalf("decode patched pod: %v", err)
	}
	return &out
}

// applyPatchJSON is the document Patch's operations make of original.
func applyPatchJSON(t *testing.T, original []byte, mutated *corev1.Pod) []byte {
	t.Helper()
	ops, err := Patch(original, mutated)
	if err != nil {
		t.Fatalf("Patch: %v", err)
	}
	raw, err := json.Marshal(ops)
	if err != nil {
		t.Fatalf("encode patch: %v", err)
	}
	patch, err := jsonpatchapply.DecodePatch(raw)
	if err != nil {
		t.Fatalf("decode patch %s: %v", raw, err)
	}
	patched, err := patch.Apply(original)
	if err != nil {
		t.Fatalf("apply patch %s to %s: %v", raw, original, err)
	}
	return patched
}

func containsAll(t *testing.T, what string, got []string, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s = %q, want %d entries containing %q", what, got, len(want), want)
	}
	for i, w := range want {
		for _, part := range strings.Split(w, "|") {
			if !strings.Contains(got[i], part) {
				t.Errorf("%s[%d] = %q, want it to contain %q", what, i, got[i], part)
			}
		}
	}
}
