// Package benchdata builds the realistic inputs of the pod-modifier's benchmarks: a notebook
// Pod (4 containers, 20 env vars, 6 volumes) and 50 PodSettings of its team, 5 of which match.
package benchdata

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
)

// NotebookPod is a Kubeflow notebook Pod as the notebook controller submits it.
func NotebookPod(namespace string) *corev1.Pod {
	env := make([]corev1.EnvVar, 0, 20)
	for i := range 20 {
		env = append(env, corev1.EnvVar{Name: fmt.Sprintf("VAR_%02d", i), Value: fmt.Sprintf("value-%02d", i)})
	}
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	for i := range 6 {
		name := fmt.Sprintf("vol-%d", i)
		volumes = append(volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		mounts = append(mounts, corev1.VolumeMount{Name: name, MountPath: "/mnt/" + name})
	}
	container := func(name, image string) corev1.Container {
		return corev1.Container{
			Name: name, Image: image, Env: env[:5], VolumeMounts: mounts[:2],
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi"),
			}},
		}
	}
	nb := container("notebook", "public.ecr.aws/kubeflow/jupyter-scipy:v1.8.0")
	nb.Env, nb.VolumeMounts = env[:], mounts[:]
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "my-notebook-0", Namespace: namespace,
			Labels: map[string]string{
				"app": "my-notebook", "notebook-name": "my-notebook", "statefulset": "my-notebook",
				"orbit/attach-security-group": "yes", "orbit/gpu": "false",
			},
			Annotations: map[string]string{"kubectl.kubernetes.io/default-container": "notebook"},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: "default-editor",
			Containers: []corev1.Container{
				nb, container("istio-proxy", "istio/proxyv2:1.20"), container("logger", "fluent/fluent-bit:2"), container("metrics", "prom/node-exporter:1"),
			},
			Volumes: volumes,
		},
	}
}

// TeamPodSettings returns 50 PodSettings of team; exactly 5 match NotebookPod.
func TeamPodSettings(team string) []*orbitv1.PodSetting {
	out := make([]*orbitv1.PodSetting, 0, 50)
	for i := range 50 {
		ps := &orbitv1.PodSetting{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("setting-%02d", i), Namespace: team, Labels: map[string]string{"orbit/space": "team"}},
			Spec: orbitv1.PodSettingSpec{
				Desc:              fmt.Sprintf("setting %d", i),
				PodSelector:       orbitv1.PodSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("other-%d", i)}},
				ContainerSelector: &orbitv1.ContainerSelector{Regex: "notebook"},
				Env:               []corev1.EnvVar{{Name: fmt.Sprintf("SETTING_%02d", i), Value: "on"}},
			},
		}
		switch i % 10 {
		case 0: // five matching, with the modifiers notebook PodSettings typically carry
			ps.Spec.PodSelector = orbitv1.PodSelector{
				MatchLabels:      map[string]string{"notebook-name": "my-notebook"},
				MatchExpressions: []orbitv1.SelectorRequirement{{Key: "orbit/gpu", Operator: "In", Values: []string{"false", "no"}}},
			}
			ps.Spec.InjectUserContext = true
			ps.Spec.NotebookApp = "lab"
			ps.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "linux", fmt.Sprintf("orbit/node-%d", i): "yes"}
			ps.Spec.Volumes = []corev1.Volume{{Name: fmt.Sprintf("team-%d", i), VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			ps.Spec.VolumeMounts = []corev1.VolumeMount{{Name: fmt.Sprintf("team-%d", i), MountPath: fmt.Sprintf("/team/%d", i)}}
			ps.Spec.Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("4Gi")}}
		case 5: // matchExpressions that do not match
			ps.Spec.PodSelector = orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{{Key: "orbit/gpu", Operator: "In", Values: []string{"true"}}}}
		}
		out = append(out, ps)
	}
	return out
}
