package podsetting

import (
	"encoding/json"
	"fmt"
	gojson "github.com/goccy/go-json"
	"slices"
	"testing"
	"time"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
)

// benchPod is a Kubeflow notebook Pod as the API server hands it to a mutating webhook:
// defaulted, with the service-account token volume and default tolerations, 4 containers
// (notebook with 20 env vars, 3 sidecars), an init container and 6 volumes.
func benchPod() *corev1.Pod {
	ctr := func(name, image string, nEnv int) corev1.Container {
		c := corev1.Container{
			Name: name, Image: image, ImagePullPolicy: corev1.PullIfNotPresent,
			TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			Resources: corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("512Mi")},
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
			},
			VolumeMounts: []corev1.VolumeMount{{Name: "kube-api-access-x7k2p", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}},
		}
		for i := range nEnv {
			c.Env = append(c.Env, env(fmt.Sprintf("%s_VAR_%02d", name, i), fmt.Sprintf("value-%d", i)))
		}
		return c
	}
	nb := ctr("notebook", "public.ecr.aws/j1r0q0g6/notebooks/notebook-servers/jupyter-scipy:v1.5.0", 20)
	nb.Ports = []corev1.ContainerPort{{Name: "notebook-port", ContainerPort: 8888, Protocol: corev1.ProtocolTCP}}
	nb.Resources.Limits[corev1.ResourceMemory] = resource.MustParse("8Gi")
	nb.VolumeMounts = append(nb.VolumeMounts,
		corev1.VolumeMount{Name: "workspace", MountPath: "/home/jovyan"},
		corev1.VolumeMount{Name: "dshm", MountPath: "/dev/shm"},
		corev1.VolumeMount{Name: "team-efs", MountPath: "/efs/shared"},
		corev1.VolumeMount{Name: "user-efs", MountPath: "/efs/user"},
	)
	nb.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/notebook/lake-alice/mynb/api", Port: intstr.FromInt32(8888)}}, PeriodSeconds: 10, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 3}
	pvc := func(name, claim string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}
	}
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "mynb-0", GenerateName: "mynb-", Namespace: userNS,
			Labels: map[string]string{
				"app": "mynb", LabelNotebookName: "mynb", "notebook-name-hash": "5d7c9", "statefulset": "mynb",
				"controller-revision-hash": "mynb-6b7f8d9c5", "statefulset.kubernetes.io/pod-name": "mynb-0",
				"orbit/space": "user", "orbit/team": teamNS, "orbit/gpu-workloads": "",
			},
			Annotations:     map[string]string{"kubectl.kubernetes.io/default-container": "notebook", "poddefault.admission.kubeflow.org/poddefault-gpu": "1"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "mynb", UID: "6c1f3a5e-0000-4000-8000-000000000001", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{ctr("init-home", "busybox:1.36", 2)},
			Containers: []corev1.Container{
				nb,
				ctr("istio-proxy", "docker.io/istio/proxyv2:1.22.0", 6),
				ctr("log-shipper", "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.0", 3),
				ctr("metrics", "quay.io/prometheus/node-exporter:v1.8.0", 2),
			},
			Volumes: []corev1.Volume{
				pvc("workspace", "mynb-workspace"),
				{Name: "dshm", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
				pvc("team-efs", "team-efs"),
				pvc("user-efs", "user-efs"),
				{Name: "istio-envoy", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "kube-api-access-x7k2p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
					Sources: []corev1.VolumeProjection{
						{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3607)}},
						{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
					},
					DefaultMode: ptr.To[int32](420),
				}}},
			},
			RestartPolicy: corev1.RestartPolicyAlways, DNSPolicy: corev1.DNSClusterFirst,
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			ServiceAccountName:            "default-editor", DeprecatedServiceAccount: "default-editor",
			SecurityContext: &corev1.PodSecurityContext{FSGroup: ptr.To[int64](100)},
			SchedulerName:   corev1.DefaultSchedulerName, Priority: ptr.To[int32](0),
			EnableServiceLinks: ptr.To(true), PreemptionPolicy: ptr.To(corev1.PreemptLowerPriority),
			Tolerations: []corev1.Toleration{
				{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
				{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
			},
		},
	}
}

// benchSettings is a team with 50 PodSettings of which 5 match benchPod: one per modifier
// family, two with JSONPath selectors among them; the other 45 select other apps.
func benchSettings() []*orbitv1.PodSetting {
	var out []*orbitv1.PodSetting
	for i := range 45 {
		ps := setting(fmt.Sprintf("other-%02d", i), regex("*"), func(s *orbitv1.PodSettingSpec) {
			s.PodSelector = orbitv1.PodSelector{
				MatchLabels:      map[string]string{"app": fmt.Sprintf("app-%d", i)},
				MatchExpressions: []orbitv1.SelectorRequirement{expr("orbit/space", "In", "user", "team")},
			}
			s.Image = "never"
		})
		out = append(out, ps)
	}
	nbSel := selector(orbitv1.PodSelector{MatchLabels: map[string]string{"app": "mynb"}})
	out = append(out,
		setting("gpu", nbSel, regex("notebook"), func(s *orbitv1.PodSettingSpec) {
			s.PodSelector.MatchExpressions = []orbitv1.SelectorRequirement{expr("orbit/gpu-workloads", "Exists")}
			s.NodeSelector = map[string]string{"node.kubernetes.io/instance-type": "g4dn.xlarge", "k8s.amazonaws.com/accelerator": "nvidia-tesla-t4"}
			s.Tolerations = []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
			s.Resources.Limits = corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")}
			s.Image = "123456789012.dkr.ecr.us-west-2.amazonaws.com/orbit/jupyter-gpu:v1.5.0"
		}),
		setting("notebook-env", nbSel, jsonPath("spec.containers[0].name"), func(s *orbitv1.PodSettingSpec) {
			s.NotebookApp = "lab"
			s.InjectUserContext = true
			s.Env = []corev1.EnvVar{env("AWS_DEFAULT_REGION", "us-west-2"), env("notebook_VAR_03", "overridden"), env("SPARK_HOME", "/opt/spark")}
		}),
		setting("sidecars", nbSel, regex("istio|log"), func(s *orbitv1.PodSettingSpec) {
			s.Env = []corev1.EnvVar{env("ORBIT_SIDECAR", "true")}
			s.Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}
		}),
		setting("storage", nbSel, jsonPath("{.metadata.annotations.kubectl\\.kubernetes\\.io/default-container}"), func(s *orbitv1.PodSettingSpec) {
			s.Volumes = []corev1.Volume{{Name: "team-efs", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "team-efs-v2"}}},
				{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			s.VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
			s.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "team-config"}}}}
		}),
		setting("team-identity", nbSel, func(s *orbitv1.PodSettingSpec) {
			s.ServiceAccountName = "lake-team"
			s.Labels = map[string]string{"orbit/attach-security-group": "lake"}
			s.Annotations = map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/orbit-lake"}
			s.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](100)}
		}),
	)
	// Interleave so sorting has work to do, as with a real lister.
	slices.Reverse(out)
	return out
}

// TestBenchFixture checks that the benchmark measures what it claims: 5 of 50 applied,
// both JSONPath selectors choosing the notebook container, and the patch valid.
func TestBenchFixture(t *testing.T) {
	set := NewSet(benchSettings())
	pod := benchPod()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	res := set.Apply(pod, userNamespace())
	if set.Len() != 50 || !slices.Equal(res.Applied, []string{"gpu", "notebook-env", "sidecars", "storage", "team-identity"}) || len(res.Warnings) != 0 {
		t.Fatalf("Len %d, Applied %q, Warnings %q", set.Len(), res.Applied, res.Warnings)
	}
	nb := container(res.Pod, "notebook")
	if i := indexEnv(nb.Env, EnvNotebookPrefix); i < 0 || nb.Env[i].Value != "/notebook/lake-alice/mynb/lab" {
		t.Errorf("notebook env = %v", nb.Env)
	}
	if indexMount(nb.VolumeMounts, "scratch") < 0 {
		t.Errorf("storage PodSetting's JSONPath did not choose the notebook: %v", nb.VolumeMounts)
	}
	requireSamePod(t, "patched", applyPatch(t, raw, res.Pod), res.Pod)
}

// BenchmarkApply is the pure mutation alone, with the Set built once as the webhook does.
func BenchmarkApply(b *testing.B) {
	set := NewSet(benchSettings())
	pod, ns := benchPod(), userNamespace()
	b.ReportAllocs()
	for b.Loop() {
		_ = set.Apply(pod, ns)
	}
}

// BenchmarkApplyRequest is the whole request path as the webhook should run it: decode the
// submitted Pod, apply in place (the Pod is the request's own), diff into a JSON Patch and
// encode it. Besides ns/op it reports the 50th and 99th percentile of
// single iterations.
func BenchmarkApplyRequest(b *testing.B) {
	set := NewSet(benchSettings())
	ns := userNamespace()
	raw, err := json.Marshal(benchPod())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	var samples []time.Duration
	for b.Loop() {
		start := time.Now()
		var pod corev1.Pod
		if err := gojson.Unmarshal(raw, &pod); err != nil { // as the handler decodes
			b.Fatal(err)
		}
		res := set.ApplyInPlace(&pod, ns)
		ops, err := Patch(raw, res.Pod)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(ops); err != nil {
			b.Fatal(err)
		}
		samples = append(samples, time.Since(start))
	}
	reportPercentiles(b, samples)
}

// BenchmarkPatch is the diff alone: encode the mutated Pod, reduce, CreatePatch.
func BenchmarkPatch(b *testing.B) {
	raw, err := json.Marshal(benchPod())
	if err != nil {
		b.Fatal(err)
	}
	res := NewSet(benchSettings()).Apply(benchPod(), userNamespace())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Patch(raw, res.Pod); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPatchUnreduced is the library diffing the whole documents, the baseline that
// pkg/webhook/patch improves on.
func BenchmarkPatchUnreduced(b *testing.B) {
	raw, err := json.Marshal(benchPod())
	if err != nil {
		b.Fatal(err)
	}
	res := NewSet(benchSettings()).Apply(benchPod(), userNamespace())
	b.ReportAllocs()
	for b.Loop() {
		modified, err := json.Marshal(res.Pod)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := jsonpatch.CreatePatch(raw, modified); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyInPlace is Apply without the deep copy.
func BenchmarkApplyInPlace(b *testing.B) {
	set := NewSet(benchSettings())
	pod, ns := benchPod(), userNamespace()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		p := pod.DeepCopy()
		b.StartTimer()
		_ = set.ApplyInPlace(p, ns)
	}
}

// BenchmarkApplyNoMatch is the common case of a Pod no PodSetting matches: the handler
// answers without a patch.
func BenchmarkApplyNoMatch(b *testing.B) {
	set := NewSet(benchSettings())
	pod, ns := benchPod(), userNamespace()
	pod.Labels["app"] = "unrelated"
	b.ReportAllocs()
	for b.Loop() {
		if res := set.Apply(pod, ns); res.Changed() {
			b.Fatal("unexpected match")
		}
	}
}

// BenchmarkNewSet is the cost of recompiling a team's 50 PodSettings on a cache change.
func BenchmarkNewSet(b *testing.B) {
	settings := benchSettings()
	b.ReportAllocs()
	for b.Loop() {
		_ = NewSet(settings)
	}
}

func reportPercentiles(b *testing.B, samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	slices.Sort(samples)
	at := func(q float64) float64 { return float64(samples[int(q*float64(len(samples)-1))].Nanoseconds()) }
	b.ReportMetric(at(0.50), "p50-ns")
	b.ReportMetric(at(0.99), "p99-ns")
}
