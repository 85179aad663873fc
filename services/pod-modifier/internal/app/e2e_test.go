package app_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
	"github.com/orbit-workbench/orbit-controller/pkg/certs"
	"github.com/orbit-workbench/orbit-controller/pkg/cli"
	"github.com/orbit-workbench/orbit-controller/pkg/health"
	"github.com/orbit-workbench/orbit-controller/pkg/orbitclient"
	"github.com/orbit-workbench/orbit-controller/pkg/testenv"
	"github.com/orbit-workbench/orbit-controller/services/pod-modifier/internal/app"
	"github.com/orbit-workbench/orbit-controller/services/pod-modifier/internal/handler"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	if os.Getenv("ORBIT_NO_CONTROL_PLANE") != "" {
		os.Exit(m.Run())
	}
	testenv.Main(m, testenv.Options{NoControllerManager: true}, &env)
}

// countingTransport counts the requests the service makes to the API server.
type countingTransport struct {
	next  http.RoundTripper
	count *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	// Watches stay open; only new requests count.
	c.count.Add(1)
	return c.next.RoundTrip(r)
}

// warnings collects the warnings the API server relays from webhooks.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

type service struct {
	requests *atomic.Int64
	health   *health.Checks
}

// startService runs the pod-modifier in process with files-mode certificates and registers a
// MutatingWebhookConfiguration pointing the API server at it for namespaces with nsLabels.
func startService(tb testing.TB, stateNS string, nsLabels map[string]string) *service {
	tb.Helper()
	ca, err := certs.NewCA("pod-modifier-test", time.Hour, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	serving, err := certs.IssueServing(ca, []string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, serving.CertPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyFile, serving.KeyPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()

	svc := &service{requests: &atomic.Int64{}, health: health.NewChecks()}
	cfg := rest.CopyConfig(env.Config)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return countingTransport{next: rt, count: svc.requests} }
	common := cli.DefaultCommon()
	common.Namespace = stateNS
	rt := &cli.Runtime{
		Common: common, Log: zerolog.New(zerolog.NewTestWriter(tb)).Level(zerolog.WarnLevel),
		Registry: prometheus.NewRegistry(), Health: svc.health,
		RESTConfig: func() (*rest.Config, error) { return cfg, nil },
	}
	opts := app.DefaultOptions()
	opts.ListenAddress = addr
	opts.Certs.Mode, opts.Certs.CertFile, opts.Certs.KeyFile = certs.ModeFiles, certFile, keyFile
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, rt, opts) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("pod-modifier: %v", err)
		}
	})
	testenv.Eventually(tb, 20*time.Second, func(ctx context.Context) (bool, string) {
		if err := svc.health.Ready(ctx); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	registerWebhook(tb, "orbit-pod-modifier-"+stateNS, "https://"+addr+handler.Path, ca.CertPEM, nsLabels)
	return svc
}

func registerWebhook(tb testing.TB, name, url string, caBundle []byte, nsLabels map[string]string) {
	tb.Helper()
	env.RegisterWebhook(tb, testenv.PodWebhook(name, url, caBundle, nsLabels))
}

func pod(name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init", Image: "busybox"}},
			Containers:     []corev1.Container{{Name: "notebook", Image: "jupyter/base:1"}, {Name: "sidecar", Image: "envoy"}},
		},
	}
}

func envOf(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

func TestPodsMutatedThroughTheAPIServer(t *testing.T) {
	ctx := t.Context()
	state := env.Namespace(t, "orbit-system", nil)
	team := env.Namespace(t, "lake", map[string]string{"orbit-test": state.Name, "orbit/space": "team"})
	// The team namespace is named after the team; GenerateName gives it a suffix, so label it.
	setTeam := func(ns *corev1.Namespace, labels map[string]string, owner string) *corev1.Namespace {
		ns.Labels["orbit/team"] = team.Name
		for k, v := range labels {
			ns.Labels[k] = v
		}
		if owner != "" {
			ns.Annotations = map[string]string{"owner": owner}
		}
		out, err := env.Clientset.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	team = setTeam(team, nil, "")
	user := setTeam(env.Namespace(t, "lake-alice", map[string]string{"orbit-test": state.Name}), map[string]string{"orbit/space": "user", "orbit/user": "alice"}, "alice@example.com")
	plain := env.Namespace(t, "plain", map[string]string{"orbit-test": state.Name})

	orbit, err := orbitclient.New(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	pss := orbit.PodSettings(team.Name)
	mk := func(ps *orbitv1.PodSetting) {
		t.Helper()
		if _, err := pss.Create(ctx, ps, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mk(&orbitv1.PodSetting{
		ObjectMeta: metav1.ObjectMeta{Name: "a-notebook"},
		Spec: orbitv1.PodSettingSpec{
			PodSelector:       orbitv1.PodSelector{MatchLabels: map[string]string{"app": "nb"}},
			ContainerSelector: &orbitv1.ContainerSelector{Regex: "note"},
			InjectUserContext: true, NotebookApp: "lab",
			NodeSelector: map[string]string{"kubernetes.io/os": "linux"},
			Labels:       map[string]string{"orbit/gpu": "no"},
			Volumes:      []corev1.Volume{{Name: "efs", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			VolumeMounts: []corev1.VolumeMount{{Name: "efs", MountPath: "/efs"}},
			Env:          []corev1.EnvVar{{Name: "TEAM", Value: "lake"}},
		},
	})
	mk(&orbitv1.PodSetting{
		ObjectMeta: metav1.ObjectMeta{Name: "b-all"},
		Spec: orbitv1.PodSettingSpec{
			PodSelector:       orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{{Key: "app", Operator: "Exists"}}},
			ContainerSelector: &orbitv1.ContainerSelector{Regex: "*"},
			Env:               []corev1.EnvVar{{Name: "TEAM", Value: "overridden"}},
		},
	})
	mk(&orbitv1.PodSetting{
		ObjectMeta: metav1.ObjectMeta{Name: "c-broken"},
		Spec: orbitv1.PodSettingSpec{
			PodSelector:       orbitv1.PodSelector{MatchLabels: map[string]string{"app": "nb"}},
			ContainerSelector: &orbitv1.ContainerSelector{Regex: "(unclosed"},
		},
	})
	svc := startService(t, state.Name, map[string]string{"orbit-test": state.Name})

	warn := &warnings{}
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler = warn
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("user namespace pod is mutated per SPEC", func(t *testing.T) {
		before := svc.requests.Load()
		got, err := client.CoreV1().Pods(user.Name).Create(ctx, pod("nb-1", map[string]string{"app": "nb", "notebook-name": "my-nb"}), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n := svc.requests.Load() - before; n != 0 {
			t.Errorf("the service made %d API requests while admitting a Pod; want 0", n)
		}
		if a := got.Annotations["orbit/applied-podsettings"]; a != "a-notebook,b-all" {
			t.Errorf("applied annotation %q", a)
		}
		nb := got.Spec.Containers[0]
		e := envOf(nb)
		want := map[string]string{
			"AWS_ORBIT_USER_SPACE": user.Name, "AWS_ORBIT_IMAGE": "jupyter/base:1",
			"NB_PREFIX": "/notebook/" + user.Name + "/my-nb/lab", "USERNAME": "alice", "USEREMAIL": "alice@example.com",
			"TEAM": "overridden",
		}
		for k, v := range want {
			if e[k] != v {
				t.Errorf("notebook env %s=%q, want %q", k, e[k], v)
			}
		}
		if len(nb.VolumeMounts) == 0 || !slices.ContainsFunc(nb.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "efs" && m.MountPath == "/efs" }) {
			t.Errorf("notebook mounts %v", nb.VolumeMounts)
		}
		if e := envOf(got.Spec.Containers[1]); e["TEAM"] != "overridden" || e["USERNAME"] != "" {
			t.Errorf("sidecar env %v: want only b-all's", e)
		}
		if e := envOf(got.Spec.InitContainers[0]); e["TEAM"] != "overridden" {
			t.Errorf("init container env %v: init containers are candidates too", e)
		}
		if got.Spec.NodeSelector["kubernetes.io/os"] != "linux" || got.Labels["orbit/gpu"] != "no" {
			t.Errorf("nodeSelector %v labels %v", got.Spec.NodeSelector, got.Labels)
		}
		if !slices.ContainsFunc(got.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "efs" }) {
			t.Errorf("volumes %v", got.Spec.Volumes)
		}
		ws := warn.take()
		if !slices.ContainsFunc(ws, func(w string) bool { return strings.Contains(w, "c-broken") }) {
			t.Errorf("warnings %v do not name the broken PodSetting", ws)
		}
	})

	t.Run("team namespace pod is mutated", func(t *testing.T) {
		got, err := client.CoreV1().Pods(team.Name).Create(ctx, pod("team-1", map[string]string{"app": "x"}), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Annotations["orbit/applied-podsettings"] != "b-all" || envOf(got.Spec.Containers[0])["USERNAME"] != "" {
			t.Errorf("annotations %v env %v", got.Annotations, envOf(got.Spec.Containers[0]))
		}
	})

	t.Run("namespace without orbit/team is untouched", func(t *testing.T) {
		got, err := client.CoreV1().Pods(plain.Name).Create(ctx, pod("plain-1", map[string]string{"app": "nb"}), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Annotations) != 0 || len(got.Spec.Containers[0].Env) != 0 {
			t.Errorf("pod changed: %v %v", got.Annotations, got.Spec.Containers[0].Env)
		}
	})

	t.Run("server-side dry-run shows the mutation", func(t *testing.T) {
		got, err := client.CoreV1().Pods(user.Name).Create(ctx, pod("dry-1", map[string]string{"app": "nb"}), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		if got.Annotations["orbit/applied-podsettings"] != "a-notebook,b-all" {
			t.Errorf("dry-run annotations %v", got.Annotations)
		}
		if _, err := client.CoreV1().Pods(user.Name).Get(ctx, "dry-1", metav1.GetOptions{}); err == nil {
			t.Error("dry-run created the Pod")
		}
	})

	t.Run("label update succeeds after the PodSetting changed, and new settings apply within a second", func(t *testing.T) {
		ps, err := pss.Get(ctx, "a-notebook")
		if err != nil {
			t.Fatal(err)
		}
		ps.Spec.Env = []corev1.EnvVar{{Name: "TEAM", Value: "lake"}, {Name: "CHANGED", Value: "yes"}}
		ps.Spec.Image = "jupyter/base:2"
		if _, err := pss.Update(ctx, ps, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		changed := time.Now()
		running, err := client.CoreV1().Pods(user.Name).Get(ctx, "nb-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		running.Labels["extra"] = "label"
		if _, err := client.CoreV1().Pods(user.Name).Update(ctx, running, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("label update on a running Pod rejected: %v", err)
		}
		var got *corev1.Pod
		for i := 0; ; i++ {
			got, err = client.CoreV1().Pods(user.Name).Create(ctx, pod("nb-new-"+string(rune('a'+i)), map[string]string{"app": "nb"}), metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if envOf(got.Spec.Containers[0])["CHANGED"] == "yes" {
				break
			}
			if time.Since(changed) > time.Second {
				t.Fatalf("changed PodSetting not in effect after %s", time.Since(changed))
			}
			time.Sleep(50 * time.Millisecond)
		}
		// b-all runs after a-notebook and records the image as a-notebook left it (SPEC: the
		// container's image before this PodSetting).
		if got.Spec.Containers[0].Image != "jupyter/base:2" || envOf(got.Spec.Containers[0])["AWS_ORBIT_IMAGE"] != "jupyter/base:2" {
			t.Errorf("image %s AWS_ORBIT_IMAGE %s", got.Spec.Containers[0].Image, envOf(got.Spec.Containers[0])["AWS_ORBIT_IMAGE"])
		}
	})
}
