package podsetting

import (
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
)

// A Pod from a newer API server carries fields this binary's k8s.io/api does not know. The
// patch must leave them alone, everywhere, while still removing what the mutation replaced
// (an env var's valueFrom overridden by a plain value) and adding what it adds.
func TestPatchKeepsFieldsThisBinaryDoesNotKnow(t *testing.T) {
	original := `{"apiVersion":"v1","kind":"Pod","futureTop":1,
	  "metadata":{"name":"nb-0","namespace":"lake-alice","labels":{"app":"jupyter"},"futureMeta":"m"},
	  "spec":{"futureSpec":{"x":[1,2]},
	    "volumes":[{"name":"home","emptyDir":{},"futureVolume":true}],
	    "containers":[{"name":"notebook","image":"jupyter:1","futureContainer":{"y":"z"},
	      "env":[{"name":"A","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}},"futureEnv":2}],
	      "resources":{"limits":{"cpu":"1"},"futureResources":3}}]},
	  "status":{"futureStatus":4}}`
	var in corev1.Pod
	if err := json.Unmarshal([]byte(original), &in); err != nil {
		t.Fatal(err)
	}
	res := Apply(&in, userNamespace(), []*orbitv1.PodSetting{setting("ps", func(s *orbitv1.PodSettingSpec) {
		s.ContainerSelector = &orbitv1.ContainerSelector{Regex: "*"}
		s.Env = []corev1.EnvVar{env("A", "plain"), env("B", "2")}
		s.NodeSelector = map[string]string{"kubernetes.io/os": "linux"}
		s.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		s.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("4Gi")}
	})})
	if !res.Changed() {
		t.Fatal("nothing applied")
	}
	patched := applyPatchJSON(t, []byte(original), res.Pod)
	var doc map[string]any
	if err := json.Unmarshal(patched, &doc); err != nil {
		t.Fatal(err)
	}
	spec := doc["spec"].(map[string]any)
	c := spec["containers"].([]any)[0].(map[string]any)
	envA := c["env"].([]any)[0].(map[string]any)
	for what, got := range map[string]any{
		"futureTop":                 doc["futureTop"],
		"metadata.futureMeta":       doc["metadata"].(map[string]any)["futureMeta"],
		"spec.futureSpec":           spec["futureSpec"],
		"volumes[0].futureVolume":   spec["volumes"].([]any)[0].(map[string]any)["futureVolume"],
		"container.futureContainer": c["futureContainer"],
		"env[0].futureEnv":          envA["futureEnv"],
		"resources.futureResources": c["resources"].(map[string]any)["futureResources"],
		"status.futureStatus":       doc["status"].(map[string]any)["futureStatus"],
	} {
		if got == nil {
			t.Errorf("%s removed: %s", what, patched)
		}
	}
	if envA["value"] != "plain" || envA["valueFrom"] != nil {
		t.Errorf("env A = %v: the PodSetting's plain value must replace valueFrom", envA)
	}
	var out corev1.Pod
	if err := json.Unmarshal(patched, &out); err != nil {
		t.Fatal(err)
	}
	requireSamePod(t, "patched original", &out, res.Pod)
}
