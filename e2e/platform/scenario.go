package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
	"github.com/orbit-workbench/orbit-controller/pkg/orbitclient"
)

const (
	team = "lake-creator"
	env  = "demo"
)

var podDefaults = schema.GroupVersionResource{Group: "kubeflow.org", Version: "v1alpha1", Resource: "poddefaults"}

// eventually polls check until it returns done or timeout passes; the last reason is the error.
func eventually(ctx context.Context, timeout time.Duration, check func(ctx context.Context) (bool, string, error)) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := "not checked"
	for {
		done, why, err := check(ctx)
		if err != nil {
			return "", err
		}
		if done {
			return why, nil
		}
		last = why
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("not within %s: %s", timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func userNamespace(user string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: team + "-" + user,
		Labels: map[string]string{
			"orbit/space": "user", "orbit/team": team, "orbit/user": user, "orbit/env": env,
		},
		Annotations: map[string]string{"owner": user + "@example.com"},
	}}
}

// PlayScenario plays the login-to-logout scenario against a started platform; false when a
// step failed (the report says which).
func PlayScenario(ctx context.Context, p *Platform, r *Report) bool {
	kube := p.Env.Clientset
	orbit, err := orbitclient.New(p.Env.Config)
	if err != nil {
		r.Fail(err)
		return false
	}
	f := p.Fixtures
	steps := []struct {
		name string
		fn   func() (string, error)
	}{
		{"a team appears with a PodSetting (the login hook's part)", func() (string, error) {
			_, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
				Name: team, Labels: map[string]string{"orbit/space": "team", "orbit/team": team, "orbit/env": env},
			}}, metav1.CreateOptions{})
			if err != nil {
				return "", err
			}
			teamContext, _ := json.Marshal(map[string]string{"UserHelmRepository": f.ChartRepoURL})
			_, err = kube.CoreV1().ConfigMaps(team).Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "orbit-team-context"},
				Data:       map[string]string{"team": string(teamContext)},
			}, metav1.CreateOptions{})
			if err != nil {
				return "", err
			}
			_, err = orbit.PodSettings(team).Create(ctx, &orbitv1.PodSetting{
				ObjectMeta: metav1.ObjectMeta{Name: "notebook-efs", Labels: map[string]string{"orbit/space": "team"}},
				Spec: orbitv1.PodSettingSpec{
					Desc:              "Team EFS and user context for notebooks",
					PodSelector:       orbitv1.PodSelector{MatchLabels: map[string]string{"orbit/notebook-efs": ""}},
					ContainerSelector: &orbitv1.ContainerSelector{Regex: "notebook"},
					InjectUserContext: true, NotebookApp: "lab",
					Volumes:      []corev1.Volume{{Name: "team-efs", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
					VolumeMounts: []corev1.VolumeMount{{Name: "team-efs", MountPath: "/efs/team"}},
					Env:          []corev1.EnvVar{{Name: "TEAM", Value: team}},
				},
			}, metav1.CreateOptions{})
			if err != nil {
				return "", err
			}
			return eventually(ctx, 10*time.Second, func(ctx context.Context) (bool, string, error) {
				pd, err := p.Env.Dynamic.Resource(podDefaults).Namespace(team).Get(ctx, "notebook-efs", metav1.GetOptions{})
				if err != nil {
					return false, "no PodDefault yet", nil
				}
				ps, err := orbit.PodSettings(team).Get(ctx, "notebook-efs")
				if err != nil {
					return false, "", err
				}
				valid := ""
				for _, c := range ps.Status.Conditions {
					if c.Type == orbitv1.ConditionValid {
						valid = string(c.Status)
					}
				}
				if valid != "True" {
					return false, "PodSetting not yet marked Valid", nil
				}
				desc, _, _ := unstructuredString(pd.Object, "spec", "desc")
				return true, fmt.Sprintf("podsettings-watcher made PodDefault %s/notebook-efs (%q) and marked the PodSetting Valid=True", team, desc), nil
			})
		}},
		{"alice and bob log in (their namespaces are created)", func() (string, error) {
			for _, u := range []string{"alice", "bob"} {
				if _, err := kube.CoreV1().Namespaces().Create(ctx, userNamespace(u), metav1.CreateOptions{}); err != nil {
					return "", err
				}
			}
			return "namespaces " + team + "-alice and " + team + "-bob created with orbit/space=user", nil
		}},
		{"their Helm releases appear in the team namespace", func() (string, error) {
			want := len(f.Charts) * 2
			return eventually(ctx, 60*time.Second, func(ctx context.Context) (bool, string, error) {
				secrets, err := kube.CoreV1().Secrets(team).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,status=deployed"})
				if err != nil {
					return false, "", err
				}
				if len(secrets.Items) < want {
					return false, fmt.Sprintf("%d of %d releases deployed", len(secrets.Items), want), nil
				}
				home, err := kube.CoreV1().ConfigMaps(team+"-alice").Get(ctx, "home", metav1.GetOptions{})
				if err != nil {
					return false, "alice's chart objects not there yet", nil
				}
				var names []string
				for _, s := range secrets.Items {
					names = append(names, s.Labels["name"])
				}
				slices.Sort(names)
				return true, fmt.Sprintf("userspace-chart-manager installed %s; alice's home ConfigMap says user=%s", strings.Join(names, ", "), home.Data["user"]), nil
			})
		}},
		{"the team's PodDefault reaches both users", func() (string, error) {
			return eventually(ctx, 10*time.Second, func(ctx context.Context) (bool, string, error) {
				for _, u := range []string{"alice", "bob"} {
					if _, err := p.Env.Dynamic.Resource(podDefaults).Namespace(team+"-"+u).Get(ctx, "notebook-efs", metav1.GetOptions{}); err != nil {
						return false, "no copy in " + team + "-" + u + " yet", nil
					}
				}
				return true, "poddefaults-watcher copied notebook-efs into " + team + "-alice and " + team + "-bob", nil
			})
		}},
		{"alice starts a notebook: the Pod comes back mutated", func() (string, error) {
			pod, err := kube.CoreV1().Pods(team+"-alice").Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "my-notebook-0", Labels: map[string]string{"notebook-name": "my-notebook", "orbit/notebook-efs": ""}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "notebook", Image: f.NotebookImage}}},
			}, metav1.CreateOptions{})
			if err != nil {
				return "", err
			}
			c := pod.Spec.Containers[0]
			envs := map[string]string{}
			for _, e := range c.Env {
				envs[e.Name] = e.Value
			}
			var problems []string
			if envs["USERNAME"] != "alice" || envs["USEREMAIL"] != "alice@example.com" || envs["NB_PREFIX"] != "/notebook/"+team+"-alice/my-notebook/lab" {
				problems = append(problems, fmt.Sprintf("env %v", envs))
			}
			if !slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "team-efs" }) {
				problems = append(problems, "no team-efs volume")
			}
			if !strings.HasPrefix(c.Image, f.MirrorHost+"/orbit-demo/") {
				problems = append(problems, "image not rewritten: "+c.Image)
			}
			if pod.Annotations["original-container-image/notebook"] != f.NotebookImage {
				problems = append(problems, "original image not recorded")
			}
			if len(problems) > 0 {
				return "", fmt.Errorf("%s", strings.Join(problems, "; "))
			}
			return fmt.Sprintf("pod-modifier applied %s (USERNAME=alice, NB_PREFIX=%s, volume team-efs); image-updater rewrote the image to %s",
				pod.Annotations["orbit/applied-podsettings"], envs["NB_PREFIX"], c.Image), nil
		}},
		{"the notebook image is replicated into the mirror", func() (string, error) {
			return eventually(ctx, 60*time.Second, func(ctx context.Context) (bool, string, error) {
				list, err := orbit.ImageReplications(systemNS).List(ctx, metav1.ListOptions{})
				if err != nil {
					return false, "", err
				}
				for _, ir := range list.Items {
					if ir.Spec.Source != f.NotebookImage {
						continue
					}
					if ir.Status.Phase == orbitv1.PhaseFailed {
						return false, "", fmt.Errorf("replication failed: %s", ir.Status.Message)
					}
					if ir.Status.Phase != orbitv1.PhaseComplete {
						return false, fmt.Sprintf("ImageReplication %s is %s", ir.Name, ir.Status.Phase), nil
					}
					ref, err := name.ParseReference(ir.Spec.Destination)
					if err != nil {
						return false, "", err
					}
					desc, err := remote.Head(ref, remote.WithContext(ctx))
					if err != nil {
						return false, "", fmt.Errorf("mirror does not serve %s: %w", ir.Spec.Destination, err)
					}
					if desc.Digest.String() != f.NotebookDigest {
						return false, "", fmt.Errorf("mirror digest %s differs from source %s", desc.Digest, f.NotebookDigest)
					}
					return true, fmt.Sprintf("image-replicator copied it (ImageReplication %s Complete, digest %s…)", ir.Name, desc.Digest.String()[:19]), nil
				}
				return false, "no ImageReplication for the notebook image yet", nil
			})
		}},
		{"bob leaves: his namespace is deleted and everything of his is cleaned up", func() (string, error) {
			if err := kube.CoreV1().Namespaces().Delete(ctx, team+"-bob", metav1.DeleteOptions{}); err != nil {
				return "", err
			}
			return eventually(ctx, 60*time.Second, func(ctx context.Context) (bool, string, error) {
				secrets, err := kube.CoreV1().Secrets(team).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm"})
				if err != nil {
					return false, "", err
				}
				for _, s := range secrets.Items {
					if strings.HasPrefix(s.Labels["name"], team+"-bob") {
						return false, "bob's release " + s.Labels["name"] + " still installed", nil
					}
				}
				if _, err := kube.CoreV1().Namespaces().Get(ctx, team+"-bob", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
					return false, "bob's namespace still terminating", nil
				}
				return true, fmt.Sprintf("bob's releases uninstalled, his namespace and PodDefault copies gone; alice keeps %d releases", len(secrets.Items)), nil
			})
		}},
	}
	for _, s := range steps {
		if ctx.Err() != nil {
			return false
		}
		if !r.Step(s.name, s.fn) {
			return false
		}
	}
	return true
}

func unstructuredString(obj map[string]any, path ...string) (string, bool, error) {
	cur := any(obj)
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false, nil
		}
		cur = m[p]
	}
	s, ok := cur.(string)
	return s, ok, nil
}
