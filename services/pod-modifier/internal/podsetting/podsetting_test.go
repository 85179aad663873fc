package podsetting

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
)

// applyCase is one row of the Apply tables. The expected Pod is the input Pod changed by
// want; the applied annotation is added by the runner from applied unless annotation is set.
type applyCase struct {
	name       string
	pod        func(*corev1.Pod) // adjusts the input Pod; nil keeps notebookPod()
	ns         *corev1.Namespace // nil means userNamespace(); use noNamespace for none
	settings   []*orbitv1.PodSetting
	want       func(*corev1.Pod) // nil means unchanged
	applied    []string
	annotation string   // expected AppliedAnnotation when it is not just applied joined
	warnings   []string // substrings per warning, parts joined by "|" must all appear
	// reinvoked names the PodSettings a second Apply on the result applies: only those whose
	// selector matches labels that earlier PodSettings added.
	reinvoked []string
}

var noNamespace = &corev1.Namespace{}

func runApplyCases(t *testing.T, cases []applyCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			in := notebookPod()
			if tt.pod != nil {
				tt.pod(in)
			}
			ns := tt.ns
			switch ns {
			case nil:
				ns = userNamespace()
			case noNamespace:
				ns = nil
			}
			original := in.DeepCopy()
			originalJSON, err := json.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}

			set := NewSet(tt.settings)
			res := set.Apply(in, ns)

			requireSamePod(t, "input after Apply (must not be modified)", in, original)
			want := original.DeepCopy()
			if tt.want != nil {
				tt.want(want)
			}
			switch {
			case tt.annotation != "":
				setAnnotation(want, AppliedAnnotation, tt.annotation)
			case len(tt.applied) > 0:
				setAnnotation(want, AppliedAnnotation, strings.Join(tt.applied, ","))
			}
			requireSamePod(t, "mutated pod", res.Pod, want)
			if !slices.Equal(res.Applied, tt.applied) {
				t.Errorf("Applied = %q, want %q", res.Applied, tt.applied)
			}
			if res.Changed() != (len(tt.applied) > 0) {
				t.Errorf("Changed() = %v with Applied %q", res.Changed(), res.Applied)
			}
			containsAll(t, "Warnings", res.Warnings, tt.warnings)

			// The patch, applied to the submitted JSON by another implementation, must give
			// the same Pod.
			requireSamePod(t, "original patched", applyPatch(t, originalJSON, res.Pod), res.Pod)

			// In place: the same outcome, on the caller's own Pod.
			own := original.DeepCopy()
			inPlace := set.ApplyInPlace(own, ns)
			if inPlace.Pod != own {
				t.Error("ApplyInPlace returned another Pod than it was given")
			}
			requireSamePod(t, "ApplyInPlace", inPlace.Pod, res.Pod)
			if !slices.Equal(inPlace.Applied, res.Applied) || !slices.Equal(inPlace.Warnings, res.Warnings) {
				t.Errorf("ApplyInPlace = %q %q, Apply = %q %q", inPlace.Applied, inPlace.Warnings, res.Applied, res.Warnings)
			}

			// Reinvocation (the API server may call the webhook again) changes nothing.
			again := set.Apply(res.Pod, ns)
			if !slices.Equal(again.Applied, tt.reinvoked) {
				t.Errorf("second Apply applied %q, want %q", again.Applied, tt.reinvoked)
			}
			if len(tt.reinvoked) == 0 {
				requireSamePod(t, "second Apply", again.Pod, res.Pod)
			}
		})
	}
}

func TestApplyContainerLevel(t *testing.T) {
	lifecycle := func(cmd string) *corev1.LifecycleHandler {
		return &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{cmd}}}
	}
	cases := []applyCase{
		{
			name:     "injects user space and image into chosen containers only",
			settings: []*orbitv1.PodSetting{setting("base", regex("notebook"))},
			want:     func(p *corev1.Pod) { injected(container(p, "notebook"), userNS) },
			applied:  []string{"base"},
		},
		{
			name:     "star chooses init containers and containers",
			settings: []*orbitv1.PodSetting{setting("all", regex("*"))},
			want: func(p *corev1.Pod) {
				injected(container(p, "init-home"), userNS)
				injected(container(p, "notebook"), userNS)
				injected(container(p, "proxy"), userNS)
			},
			applied: []string{"all"},
		},
		{
			name:     "regex anchored at the start chooses an init container",
			settings: []*orbitv1.PodSetting{setting("init", regex("init"))},
			want:     func(p *corev1.Pod) { injected(container(p, "init-home"), userNS) },
			applied:  []string{"init"},
		},
		{
			name:     "regex matching inside the name only chooses nothing",
			settings: []*orbitv1.PodSetting{setting("home", regex("home"), func(s *orbitv1.PodSettingSpec) { s.Image = "x" })},
			applied:  []string{"home"},
		},
		{
			name: "no container selector touches no container",
			settings: []*orbitv1.PodSetting{setting("podonly", func(s *orbitv1.PodSettingSpec) {
				s.Labels = map[string]string{"gpu": "true"}
				s.Image = "ignored"
				s.Env = []corev1.EnvVar{env("IGNORED", "1")}
			})},
			want:    func(p *corev1.Pod) { p.Labels["gpu"] = "true" },
			applied: []string{"podonly"},
		},
		{
			name:     "empty regex is no selector",
			settings: []*orbitv1.PodSetting{setting("empty", regex(""), func(s *orbitv1.PodSettingSpec) { s.Image = "ignored" })},
			applied:  []string{"empty"},
		},
		{
			name:     "jsonpath in the original's bare form",
			settings: []*orbitv1.PodSetting{setting("jp", jsonPath("metadata.labels.target"))},
			want:     func(p *corev1.Pod) { injected(container(p, "proxy"), userNS) },
			applied:  []string{"jp"},
		},
		{
			name:     "jsonpath in kubectl template form",
			settings: []*orbitv1.PodSetting{setting("jp", jsonPath("{.metadata.labels.target}"))},
			want:     func(p *corev1.Pod) { injected(container(p, "proxy"), userNS) },
			applied:  []string{"jp"},
		},
		{
			name:     "jsonpath with several results",
			settings: []*orbitv1.PodSetting{setting("jp", jsonPath("{.spec.containers[*].name}"))},
			want: func(p *corev1.Pod) {
				injected(container(p, "notebook"), userNS)
				injected(container(p, "proxy"), userNS)
			},
			applied: []string{"jp"},
		},
		{
			name:     "jsonpath naming no container still applies pod level",
			pod:      func(p *corev1.Pod) { p.Labels["target"] = "nothing" },
			settings: []*orbitv1.PodSetting{setting("jp", jsonPath("metadata.labels.target"), func(s *orbitv1.PodSettingSpec) { s.Labels = map[string]string{"x": "y"} })},
			want:     func(p *corev1.Pod) { p.Labels["x"] = "y" },
			applied:  []string{"jp"},
		},
		{
			name: "injected variables replace existing entries in place",
			pod: func(p *corev1.Pod) {
				c := container(p, "notebook")
				c.Env = append([]corev1.EnvVar{{Name: EnvUserSpace, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}, c.Env...)
				c.Env = append(c.Env, env(EnvImage, "stale"))
			},
			settings: []*orbitv1.PodSetting{setting("base", regex("notebook"))},
			want: func(p *corev1.Pod) {
				c := container(p, "notebook")
				c.Env[0] = env(EnvUserSpace, userNS)
				c.Env[3] = env(EnvImage, nbImage)
			},
			applied: []string{"base"},
		},
		{
			name:     "NB_PREFIX from the notebook-name label",
			settings: []*orbitv1.PodSetting{setting("nb", regex("notebook"), func(s *orbitv1.PodSettingSpec) { s.NotebookApp = "lab" })},
			want: func(p *corev1.Pod) {
				c := container(p, "notebook")
				injected(c, userNS)
				c.Env = append(c.Env, env(EnvNotebookPrefix, "/notebook/lake-alice/mynb/lab"))
			},
			applied: []string{"nb"},
		},
		{
			name:     "NB_PREFIX falls back to the pod name",
			pod:      func(p *corev1.Pod) { delete(p.Labels, LabelNotebookName) },
			settings: []*orbitv1.PodSetting{setting("nb", regex("notebook"), func(s *orbitv1.PodSettingSpec) { s.NotebookApp = "lab" })},
			want: func(p *corev1.Pod) {
				c := container(p, "notebook")
				injected(c, userNS)
				c.Env = append(c.Env, env(EnvNotebookPrefix, "/notebook/lake-alice/mynb-0/lab"))
			},
			applied: []string{"nb"},
		},
		{
			name:     "user context from the user namespace",
			settings: []*orbitv1.PodSetting{setting("user", regex("notebook"), func(s *orbitv1.PodSettingSpec) { s.InjectUserContext = true })},
			want: func(p *corev1.Pod) {
				c := container(p, "notebook")
				injected(c, userNS)
				c.Env = append(c.Env, env(EnvUserName, "alice"), env(EnvUserEmail, aliceEmail))
			},
			applied: []string{"user"},
		},
		{
			name:     "user context in the team namespace: team name and empty e-mail",
			pod:      func(p *corev1.Pod) { p.Namespace = teamNS },
			ns:       teamNamespace(),
			settings: []*orbitv1.PodSetting{setting("user", regex("notebook"), func(s *orbitv1.PodSettingSpec) { s.InjectUserContext = true })},
			want: func(p *corev1.Pod) {
				c := container(p, "notebook")
				injected(c, teamNS)
				c.Env = append(c.Env, env(EnvUserName, teamNS), env(EnvUserEmail, ""))
			},
			applied: []string{"user"},
		},
		{
			name:     "without a namespace object the pod's namespace is the user space",
			ns:       noNamespace,
			settings: []*orbitv1.PodSetting{setting("user", regex("notebook"), func(s *orbitv1.PodSettingSpec) { s.InjectUserContext = true })},
			want: func(p *corev1.Pod) {
				c := container(p, "notebook")
				injected(c, userNS)
				c.Env = append(c.Env, env(EnvUserName, ""), env(EnvUserEmail, ""))
			},
			applied: []string{"user"},
		},
		{
			name:     "namespace object wins over an empty pod namespace",
			pod:      func(p *corev1.Pod) { p.Namespace = "" },
			settings: []*orbitv1.PodSetting{setting("base", regex("notebook"))},
			want:     func(p *corev1.Pod) { injected(container(p, "notebook"), userNS) },
			applied:  []string{"base"},
		},
		{
			name: "image, pull policy, command and args replace",
			pod:  func(p *corev1.Pod) { container(p, "notebook").Command = []string{"start.sh"} },
			settings: []*orbitv1.PodSetting{setting("img", regex("notebook"), func(s *orbitv1.PodSettingSpec) {
				s.Image = "ecr/scipy:2"
				s.ImagePullPolicy = corev1.PullAlways
				s.Command = []string{"tini", "--"}
				s.Args = []string{"start-notebook.sh", "--debug"}
			})},
			want: func(p *corev1.Pod) {
				c := container(p, "notebook")
				injected(c, userNS) // AWS_ORBIT_IMAGE is the image before
				c.Image = "ecr/scipy:2"
				c.ImagePullPolicy = corev1.PullAlways
				c.Command = []string{"tini", "--"}
				c.Args = []string{"start-notebook.sh", "--debug"}
			},
			applied: []string{"img"},
		},
		{
			name: "env replaced in place and new names appended in order",
			settings: []*orbitv1.PodSetting{setting("env", regex("notebook"), func(s *orbitv1.PodSettingSpec) {
				s.Env = []corev1.EnvVar{env("NEW1", "1"), env("TZ", "Europe/Paris"), {Name: "NEW2", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "k"}}}}
			})},
			want: func(p *corev1.Pod) {
				c := container(p, "notebook")
				injected(c, userNS)
				c.Env[1] = env("TZ", "Europe/Paris")
				c.Env = append(c.Env, env("NEW1", "1"), corev1.EnvVar{Name: "NEW2", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "k"}}})
			},
			applied: []string{"env"},
		},
		{
			name: "a PodSetting's env overrides an injected variable",
			settings: []*orbitv1.PodSetting{setting("env", regex("notebook"), func(s *orbitv1.PodSettingSpec) {
				s.Env = []corev1.EnvVar{env(EnvImage, "custom")}
			})},
			want: func(p *corev1.Pod) {
				c := container(p, "notebook")
				c.Env = append(c.Env, env(EnvUserSpace, userNS), env(EnvImage, "custom"))
			},
			applied: []string{"env"},
		},
		{
			name: "envFrom appended",
			pod: func(p *corev1.Pod) {
				container(p, "notebook").EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "a"}}}}
			},
			settings: []*orbitv1.PodSetting{setting("ef", regex("notebook"), func(s *orbitv1.PodSettingSpec) {
				s.EnvFrom = []corev1.EnvFromSource{{Prefix: "B_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "b"}}}}
			})},
			want: func(p *corev1.Pod) {
				c := container(p, "notebook")
				injected(c, userNS)
				c.EnvFrom = append(c.EnvFrom, corev1.EnvFromSource{Prefix: "B_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "b"}}})
			},
			applied: []string{"ef"},
		},
		{
			name: "volumeMounts replaced in place by name and appended in order",
			settings: []*orbitv1.PodSetting{setting("vm", regex("notebook"), func(s *orbitv1.PodSettingSpec) {
				s.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}, {Name: "home", MountPath: "/home/user", ReadOnly: true}, {Name: "efs", MountPath: "/efs"}}
			})},
			want: func(p *corev1.Pod) {
				c := container(p, "notebook")
				injected(c, userNS)
				c.VolumeMounts[0] = corev1.VolumeMount{Name: "home", MountPath: "/home/user", ReadOnly: true}
				c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "data", MountPath: "/data"}, corev1.VolumeMount{Name: "efs", MountPath: "/efs"})
			},
			applied: []string{"vm"},
		},
		{
			name: "lifecycle replaces postStart and preStop individually",
			pod: func(p *corev1.Pod) {
				container(p, "notebook").Lifecycle = &corev1.Lifecycle{PostStart: lifecycle("a"), PreStop: lifecycle("b")}
			},
			settings: []*orbitv1.PodSetting{setting("lc", regex("notebook"), func(s *orbitv1.PodSettingSpec) {
				s.Lifecycle = &corev1.Lifecycle{PreStop: lifecycle("c")}
			})},
			want: func(p *corev1.Pod) {
				c := container(p, "notebook")
				injected(c, userNS)
				c.Lifecycle.PreStop = lifecycle("c")
			},
			applied: []string{"lc"},
		},
		{
			name: "lifecycle postStart replaced, preStop kept",
			pod: func(p *corev1.Pod) {
				container(p, "notebook").Lifecycle = &corev1.Lifecycle{PostStart: lifecycle("a"), PreStop: lifecycle("b")}
			},
			settings: []*orbitv1.PodSetting{setting("lc", regex("notebook"), func(s *orbitv1.PodSettingSpec) {
				s.Lifecycle = &corev1.Lifecycle{PostStart: lifecycle("c")}
			})},
			want: func(p *corev1.Pod) {
				c := container(p, "notebook")
				injected(c, userNS)
				c.Lifecycle.PostStart = lifecycle("c")
			},
			applied: []string{"lc"},
		},
		{
			name: "lifecycle set on a container without one",
			settings: []*orbitv1.PodSetting{setting("lc", regex("proxy"), func(s *orbitv1.PodSettingSpec) {
				s.Lifecycle = &corev1.Lifecycle{PreStop: lifecycle("drain")}
			})},
			want: func(p *corev1.Pod) {
				c := container(p, "proxy")
				injected(c, userNS)
				c.Lifecycle = &corev1.Lifecycle{PreStop: lifecycle("drain")}
			},
			applied: []string{"lc"},
		},
		{
			name: "resources limits and requests merge by resource",
			settings: []*orbitv1.PodSetting{setting("res", regex("notebook"), func(s *orbitv1.PodSettingSpec) {
				s.Resources = corev1.ResourceRequirements{
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("8Gi"), "nvidia.com/gpu": resource.MustParse("1")},
					Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")},
				}
			})},
			want: func(p *corev1.Pod) {
				c := container(p, "notebook")
				injected(c, userNS)
				c.Resources.Limits[corev1.ResourceMemory] = resource.MustParse("8Gi")
				c.Resources.Limits["nvidia.com/gpu"] = resource.MustParse("1")
				c.Resources.Requests[corev1.ResourceMemory] = resource.MustParse("2Gi")
			},
			applied: []string{"res"},
		},
		{
			name: "resources on a container without any, and claims by name",
			pod: func(p *corev1.Pod) {
				container(p, "proxy").Resources.Claims = []corev1.ResourceClaim{{Name: "gpu", Request: "old"}}
			},
			settings: []*orbitv1.PodSetting{setting("res", regex("proxy"), func(s *orbitv1.PodSettingSpec) {
				s.Resources = corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
					Claims:   []corev1.ResourceClaim{{Name: "gpu", Request: "new"}, {Name: "fpga"}},
				}
			})},
			want: func(p *corev1.Pod) {
				c := container(p, "proxy")
				injected(c, userNS)
				c.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}
				c.Resources.Claims = []corev1.ResourceClaim{{Name: "gpu", Request: "new"}, {Name: "fpga"}}
			},
			applied: []string{"res"},
		},
	}
	runApplyCases(t, cases)
}

func TestApplyPodLevel(t *testing.T) {
	cases := []applyCase{
		{
			name:     "serviceAccountName replaces; unset deprecated serviceAccount stays unset",
			settings: []*orbitv1.PodSetting{setting("sa", func(s *orbitv1.PodSettingSpec) { s.ServiceAccountName = "team-lake" })},
			want:     func(p *corev1.Pod) { p.Spec.ServiceAccountName = "team-lake" },
			applied:  []string{"sa"},
		},
		{
			name:     "deprecated serviceAccount replaced where set",
			pod:      func(p *corev1.Pod) { p.Spec.DeprecatedServiceAccount = "default-editor" },
			settings: []*orbitv1.PodSetting{setting("sa", func(s *orbitv1.PodSettingSpec) { s.ServiceAccountName = "team-lake" })},
			want: func(p *corev1.Pod) {
				p.Spec.ServiceAccountName = "team-lake"
				p.Spec.DeprecatedServiceAccount = "team-lake"
			},
			applied: []string{"sa"},
		},
		{
			name: "labels merge key by key, the PodSetting winning",
			settings: []*orbitv1.PodSetting{setting("lbl", func(s *orbitv1.PodSettingSpec) {
				s.Labels = map[string]string{"target": "notebook", "orbit/gpu": "", "app.kubernetes.io/part-of": "orbit"}
			})},
			want: func(p *corev1.Pod) {
				p.Labels["target"] = "notebook"
				p.Labels["orbit/gpu"] = ""
				p.Labels["app.kubernetes.io/part-of"] = "orbit"
			},
			applied: []string{"lbl"},
		},
		{
			name: "annotations merge key by key on a pod without annotations",
			pod:  func(p *corev1.Pod) { p.Annotations = nil },
			settings: []*orbitv1.PodSetting{setting("ann", func(s *orbitv1.PodSettingSpec) {
				s.Annotations = map[string]string{"sidecar.istio.io/inject": "false", "cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
			})},
			want: func(p *corev1.Pod) {
				p.Annotations = map[string]string{"sidecar.istio.io/inject": "false", "cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
			},
			applied: []string{"ann"},
		},
		{
			name: "a PodSetting cannot overwrite the applied record",
			settings: []*orbitv1.PodSetting{setting("ann", func(s *orbitv1.PodSettingSpec) {
				s.Annotations = map[string]string{AppliedAnnotation: "forged"}
			})},
			applied: []string{"ann"},
		},
		{
			name: "nodeSelector merges, keys with slashes",
			pod:  func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "linux", "zone": "a"} },
			settings: []*orbitv1.PodSetting{setting("ns", func(s *orbitv1.PodSettingSpec) {
				s.NodeSelector = map[string]string{"zone": "b", "node.kubernetes.io/instance-type": "g4dn.xlarge"}
			})},
			want: func(p *corev1.Pod) {
				p.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "linux", "zone": "b", "node.kubernetes.io/instance-type": "g4dn.xlarge"}
			},
			applied: []string{"ns"},
		},
		{
			name: "securityContext set on a pod without one",
			settings: []*orbitv1.PodSetting{setting("sc", func(s *orbitv1.PodSettingSpec) {
				s.SecurityContext = &corev1.PodSecurityContext{FSGroup: ptr.To[int64](100)}
			})},
			want:    func(p *corev1.Pod) { p.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: ptr.To[int64](100)} },
			applied: []string{"sc"},
		},
		{
			name: "securityContext merges by top-level field",
			pod: func(p *corev1.Pod) {
				p.Spec.SecurityContext = &corev1.PodSecurityContext{
					RunAsUser: ptr.To[int64](1000), FSGroup: ptr.To[int64](100),
					SeccompProfile:     &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("p.json")},
					SupplementalGroups: []int64{5},
				}
			},
			settings: []*orbitv1.PodSetting{setting("sc", func(s *orbitv1.PodSettingSpec) {
				s.SecurityContext = &corev1.PodSecurityContext{
					RunAsUser: ptr.To[int64](2000), RunAsNonRoot: ptr.To(true),
					SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					Sysctls:        []corev1.Sysctl{{Name: "net.core.somaxconn", Value: "1024"}},
				}
			})},
			want: func(p *corev1.Pod) {
				p.Spec.SecurityContext = &corev1.PodSecurityContext{
					RunAsUser: ptr.To[int64](2000), RunAsNonRoot: ptr.To(true), FSGroup: ptr.To[int64](100),
					SeccompProfile:     &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					SupplementalGroups: []int64{5},
					Sysctls:            []corev1.Sysctl{{Name: "net.core.somaxconn", Value: "1024"}},
				}
			},
			applied: []string{"sc"},
		},
		{
			name: "volumes replace same-named entries in place and append the rest",
			settings: []*orbitv1.PodSetting{setting("vol", func(s *orbitv1.PodSettingSpec) {
				s.Volumes = []corev1.Volume{
					{Name: "efs", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "team-efs"}}},
					{Name: "home", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
				}
			})},
			want: func(p *corev1.Pod) {
				p.Spec.Volumes[0] = corev1.Volume{Name: "home", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
				p.Spec.Volumes = append(p.Spec.Volumes,
					corev1.Volume{Name: "efs", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "team-efs"}}},
					corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}})
			},
			applied: []string{"vol"},
		},
		{
			name: "tolerations appended unless an equal one exists",
			pod: func(p *corev1.Pod) {
				p.Spec.Tolerations = []corev1.Toleration{
					{Key: "nvidia.com/gpu", Effect: corev1.TaintEffectNoSchedule},
					{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
				}
			},
			settings: []*orbitv1.PodSetting{setting("tol", func(s *orbitv1.PodSettingSpec) {
				s.Tolerations = []corev1.Toleration{
					{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpEqual, Effect: corev1.TaintEffectNoSchedule},                                                     // equal: "" means Equal
					{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](60)}, // differs
					{Key: "orbit/spot", Operator: corev1.TolerationOpExists},
				}
			})},
			want: func(p *corev1.Pod) {
				p.Spec.Tolerations = append(p.Spec.Tolerations,
					corev1.Toleration{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](60)},
					corev1.Toleration{Key: "orbit/spot", Operator: corev1.TolerationOpExists})
			},
			applied: []string{"tol"},
		},
		{
			name: "affinity set on a pod without one",
			settings: []*orbitv1.PodSetting{setting("aff", func(s *orbitv1.PodSettingSpec) {
				s.Affinity = &corev1.Affinity{NodeAffinity: nodeAffinity("g4dn.xlarge")}
			})},
			want:    func(p *corev1.Pod) { p.Spec.Affinity = &corev1.Affinity{NodeAffinity: nodeAffinity("g4dn.xlarge")} },
			applied: []string{"aff"},
		},
		{
			name: "affinity merges by its three parts",
			pod: func(p *corev1.Pod) {
				p.Spec.Affinity = &corev1.Affinity{NodeAffinity: nodeAffinity("m5.large"), PodAffinity: podAffinity("cache")}
			},
			settings: []*orbitv1.PodSetting{setting("aff", func(s *orbitv1.PodSettingSpec) {
				s.Affinity = &corev1.Affinity{NodeAffinity: nodeAffinity("g4dn.xlarge"), PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: podAffinity("jupyter").RequiredDuringSchedulingIgnoredDuringExecution}}
			})},
			want: func(p *corev1.Pod) {
				p.Spec.Affinity = &corev1.Affinity{
					NodeAffinity:    nodeAffinity("g4dn.xlarge"),
					PodAffinity:     podAffinity("cache"),
					PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: podAffinity("jupyter").RequiredDuringSchedulingIgnoredDuringExecution},
				}
			},
			applied: []string{"aff"},
		},
	}
	runApplyCases(t, cases)
}

func nodeAffinity(instanceType string) *corev1.NodeAffinity {
	return &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: "node.kubernetes.io/instance-type", Operator: corev1.NodeSelectorOpIn, Values: []string{instanceType}},
		}}},
	}}
}

func podAffinity(app string) *corev1.PodAffinity {
	return &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
		TopologyKey:   "kubernetes.io/hostname",
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
	}}}
}

func TestApplySelectionAndOrder(t *testing.T) {
	badOp := selector(orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{expr("app", "Equals", "jupyter")}})
	cases := []applyCase{
		{
			name:     "pod without labels matches nothing",
			pod:      func(p *corev1.Pod) { p.Labels = nil },
			settings: []*orbitv1.PodSetting{setting("a", regex("*")), setting("b", selector(orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{expr("x", "NotExists")}}))},
		},
		{
			name:     "empty podSelector matches nothing",
			settings: []*orbitv1.PodSetting{setting("a", regex("*"), selector(orbitv1.PodSelector{}))},
		},
		{
			name: "non-matching selectors",
			settings: []*orbitv1.PodSetting{
				setting("other-app", regex("*"), selector(orbitv1.PodSelector{MatchLabels: map[string]string{"app": "vscode"}})),
				setting("not-in", regex("*"), selector(orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{expr("app", "NotIn", "jupyter", "vscode")}})),
				setting("exists", regex("*"), selector(orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{expr("gpu", "Exists")}})),
				setting("label-and-expr", regex("*"), selector(orbitv1.PodSelector{MatchLabels: map[string]string{"app": "jupyter"}, MatchExpressions: []orbitv1.SelectorRequirement{expr("target", "DoesNotExist")}})),
			},
		},
		{
			name: "matching expressions",
			settings: []*orbitv1.PodSetting{
				setting("in", selector(orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{expr("app", "In", "jupyter", "vscode")}}), func(s *orbitv1.PodSettingSpec) { s.Labels = map[string]string{"in": "1"} }),
				setting("notexists", selector(orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{expr("gpu", "NotExists"), expr("app", "Exists")}}), func(s *orbitv1.PodSettingSpec) { s.Labels = map[string]string{"ne": "1"} }),
			},
			want: func(p *corev1.Pod) {
				p.Labels["in"] = "1"
				p.Labels["ne"] = "1"
			},
			applied: []string{"in", "notexists"},
		},
		{
			name: "several matches applied in name order, a later one winning",
			settings: []*orbitv1.PodSetting{
				setting("c-labels", func(s *orbitv1.PodSettingSpec) { s.Labels = map[string]string{"tier": "c"} }),
				setting("a-image", regex("notebook"), func(s *orbitv1.PodSettingSpec) {
					s.Image = "a:1"
					s.Labels = map[string]string{"tier": "a", "from-a": "yes"}
					s.Env = []corev1.EnvVar{env("X", "a")}
					s.NodeSelector = map[string]string{"pool": "a"}
				}),
				setting("b-image", regex("notebook"), func(s *orbitv1.PodSettingSpec) {
					s.Image = "b:1"
					s.Env = []corev1.EnvVar{env("X", "b"), env("Y", "b")}
					s.NodeSelector = map[string]string{"pool": "b"}
				}),
			},
			want: func(p *corev1.Pod) {
				p.Labels["tier"] = "c"
				p.Labels["from-a"] = "yes"
				p.Spec.NodeSelector = map[string]string{"pool": "b"}
				c := container(p, "notebook")
				c.Image = "b:1"
				// AWS_ORBIT_IMAGE is the image before the last PodSetting that touched it.
				c.Env = append(c.Env, env(EnvUserSpace, userNS), env(EnvImage, "a:1"), env("X", "b"), env("Y", "b"))
			},
			applied: []string{"a-image", "b-image", "c-labels"},
		},
		{
			name: "selectors see the pod as submitted, not as changed by earlier PodSettings",
			settings: []*orbitv1.PodSetting{
				setting("a", func(s *orbitv1.PodSettingSpec) { s.Labels = map[string]string{"tier": "gpu", "target": "notebook"} }),
				setting("b-needs-tier", selector(orbitv1.PodSelector{MatchLabels: map[string]string{"tier": "gpu"}}), func(s *orbitv1.PodSettingSpec) { s.Labels = map[string]string{"b": "1"} }),
				setting("c-no-tier", jsonPath("metadata.labels.target"), selector(orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{expr("tier", "DoesNotExist")}})),
			},
			want: func(p *corev1.Pod) {
				p.Labels["tier"] = "gpu"
				p.Labels["target"] = "notebook"
				injected(container(p, "proxy"), userNS) // the submitted target label named proxy
			},
			applied:   []string{"a", "c-no-tier"},
			reinvoked: []string{"b-needs-tier"},
		},
		{
			name:     "invalid podSelector warned and skipped, the rest apply",
			settings: []*orbitv1.PodSetting{setting("bad", regex("*"), badOp), setting("good", regex("proxy"))},
			want:     func(p *corev1.Pod) { injected(container(p, "proxy"), userNS) },
			applied:  []string{"good"},
			warnings: []string{`podsetting lake/bad skipped|invalid podSelector|unknown operator "Equals"`},
		},
		{
			name:     "invalid podSelector warned for a pod that matches nothing",
			pod:      func(p *corev1.Pod) { p.Labels = nil },
			settings: []*orbitv1.PodSetting{setting("bad", badOp, selector(orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{expr("app", "In")}}))},
			warnings: []string{"lake/bad|needs at least one value"},
		},
		{
			name: "invalid containerSelector warned only where the podSelector matches",
			settings: []*orbitv1.PodSetting{
				setting("bad-regex", regex("jupyter[")),
				setting("bad-regex-elsewhere", regex("("), selector(orbitv1.PodSelector{MatchLabels: map[string]string{"app": "vscode"}})),
				setting("bad-jsonpath", jsonPath("{.metadata.labels"), func(s *orbitv1.PodSettingSpec) { s.Labels = map[string]string{"skipped": "true"} }),
				setting("good", func(s *orbitv1.PodSettingSpec) { s.Labels = map[string]string{"good": "true"} }),
			},
			want:    func(p *corev1.Pod) { p.Labels["good"] = "true" },
			applied: []string{"good"},
			warnings: []string{
				"podsetting lake/bad-jsonpath skipped|invalid containerSelector|jsonpath",
				`podsetting lake/bad-regex skipped|invalid containerSelector|"jupyter["`,
			},
		},
		{
			name:     "jsonpath that cannot be evaluated on this pod is warned and skipped",
			settings: []*orbitv1.PodSetting{setting("jp", jsonPath("{.metadata.name[0]}"), func(s *orbitv1.PodSettingSpec) { s.Labels = map[string]string{"skipped": "true"} })},
			warnings: []string{"podsetting lake/jp skipped|evaluate JSONPath"},
		},
		{
			name:       "PodSetting already recorded on the pod is not applied again",
			pod:        func(p *corev1.Pod) { p.Annotations[AppliedAnnotation] = "a" },
			settings:   []*orbitv1.PodSetting{setting("a", regex("*"), func(s *orbitv1.PodSettingSpec) { s.Image = "a:1" }), setting("b", regex("proxy"))},
			want:       func(p *corev1.Pod) { injected(container(p, "proxy"), userNS) },
			applied:    []string{"b"},
			annotation: "a,b",
		},
		{
			name:       "recorded list normalised: spaces, empties and duplicates dropped",
			pod:        func(p *corev1.Pod) { p.Annotations[AppliedAnnotation] = " a, ,a,zz " },
			settings:   []*orbitv1.PodSetting{setting("a", regex("*")), setting("b", func(s *orbitv1.PodSettingSpec) { s.Labels = map[string]string{"b": "1"} })},
			want:       func(p *corev1.Pod) { p.Labels["b"] = "1" },
			applied:    []string{"b"},
			annotation: "a,zz,b",
		},
		{
			name:     "nothing applied leaves the record alone",
			pod:      func(p *corev1.Pod) { p.Annotations[AppliedAnnotation] = " a" },
			settings: []*orbitv1.PodSetting{setting("a", regex("*"))},
		},
		{
			name: "duplicate names are applied once",
			settings: []*orbitv1.PodSetting{
				setting("dup", func(s *orbitv1.PodSettingSpec) { s.Labels = map[string]string{"first": "1"} }),
				setting("dup", func(s *orbitv1.PodSettingSpec) { s.Labels = map[string]string{"second": "1"} }),
			},
			want:    func(p *corev1.Pod) { p.Labels["first"] = "1" },
			applied: []string{"dup"},
		},
		{
			name:     "nil PodSettings are ignored",
			settings: []*orbitv1.PodSetting{nil, setting("a", regex("proxy")), nil},
			want:     func(p *corev1.Pod) { injected(container(p, "proxy"), userNS) },
			applied:  []string{"a"},
		},
	}
	runApplyCases(t, cases)
}

// Everything the result holds must be its own: the PodSettings are shared by every request
// and the caller may change the result.
func TestApplySharesNoMemory(t *testing.T) {
	ps := setting("all", regex("*"), func(s *orbitv1.PodSettingSpec) {
		s.Labels = map[string]string{"l": "1"}
		s.NodeSelector = map[string]string{"n": "1"}
		s.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1)}
		s.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}}}}
		s.Tolerations = []corev1.Toleration{{Key: "t", TolerationSeconds: ptr.To[int64](1)}}
		s.Affinity = &corev1.Affinity{NodeAffinity: nodeAffinity("x")}
		s.Command = []string{"c"}
		s.Args = []string{"a"}
		s.Env = []corev1.EnvVar{{Name: "E", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
		s.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}}}
		s.VolumeMounts = []corev1.VolumeMount{{Name: "v", MountPath: "/v"}}
		s.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"x"}}}}
		s.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
	})
	before := ps.DeepCopy()
	in := notebookPod()
	in.Spec.Containers[1].Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"y"}}}}
	in.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: ptr.To[int64](2)}
	inBefore := in.DeepCopy()

	res := Apply(in, userNamespace(), []*orbitv1.PodSetting{ps})
	p := res.Pod
	p.Labels["l"] = "changed"
	p.Spec.NodeSelector["n"] = "changed"
	*p.Spec.SecurityContext.RunAsUser = 99
	*p.Spec.SecurityContext.FSGroup = 99
	p.Spec.Volumes[len(p.Spec.Volumes)-1].ConfigMap.Name = "changed"
	*p.Spec.Tolerations[0].TolerationSeconds = 99
	p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0].Values[0] = "changed"
	for _, c := range append(p.Spec.InitContainers, p.Spec.Containers...) {
		c.Command[0], c.Args[0] = "changed", "changed"
		c.Env[len(c.Env)-1].ValueFrom.FieldRef.FieldPath = "changed"
		c.EnvFrom[len(c.EnvFrom)-1].ConfigMapRef.Name = "changed"
		c.VolumeMounts[len(c.VolumeMounts)-1].MountPath = "changed"
		c.Lifecycle.PreStop.Exec.Command[0] = "changed"
		if c.Lifecycle.PostStart != nil {
			c.Lifecycle.PostStart.Exec.Command[0] = "changed"
		}
		q := c.Resources.Limits[corev1.ResourceCPU]
		q.Add(resource.MustParse("5"))
		c.Resources.Limits[corev1.ResourceCPU] = q
	}
	requireSamePodSetting(t, ps, before)
	requireSamePod(t, "input", in, inBefore)
}

func requireSamePodSetting(t *testing.T, got, want *orbitv1.PodSetting) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("PodSetting changed through the result:\ngot:  %s\nwant: %s", g, w)
	}
}

// A Set is shared by concurrent requests.
func TestSetConcurrentApply(t *testing.T) {
	set := NewSet([]*orbitv1.PodSetting{
		setting("a", jsonPath("{range .spec.containers[*]}{.name}{end}"), func(s *orbitv1.PodSettingSpec) { s.Env = []corev1.EnvVar{env("A", "1")} }),
		setting("b", regex("note"), func(s *orbitv1.PodSettingSpec) { s.Labels = map[string]string{"b": "1"} }),
	})
	want := set.Apply(notebookPod(), userNamespace())
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 50 {
				got := set.Apply(notebookPod(), userNamespace())
				g, _ := json.Marshal(got.Pod)
				w, _ := json.Marshal(want.Pod)
				if string(g) != string(w) {
					errs <- fmt.Errorf("concurrent Apply gave %s, want %s", g, w)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestNewSetSortsByName(t *testing.T) {
	set := NewSet([]*orbitv1.PodSetting{setting("b"), setting("a"), nil, setting("c")})
	if set.Len() != 3 {
		t.Fatalf("Len = %d, want 3", set.Len())
	}
	var names []string
	for _, it := range set.items {
		names = append(names, it.ps.Name)
	}
	if !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Errorf("order = %q", names)
	}
}
