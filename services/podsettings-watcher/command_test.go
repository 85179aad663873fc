package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/orbit-workbench/orbit-controller/pkg/cli"
	"github.com/orbit-workbench/orbit-controller/pkg/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{}, &env) }

func execute(t *testing.T, ctx context.Context, args []string, environ map[string]string) (int, string, string) {
	t.Helper()
	var stdout, stderr syncBuffer
	code := cli.Execute(ctx, command("v1.2.3"), cli.IO{
		Args:   args,
		Env:    func(k string) (string, bool) { v, ok := environ[k]; return v, ok },
		Stdout: &stdout, Stderr: &stderr,
	})
	return code, stdout.String(), stderr.String()
}

func TestFlagsAndConfiguration(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		env    map[string]string
		code   int
		stdout []string
		stderr string
	}{
		{name: "help lists the watcher flags and the environment key", args: []string{"--help"}, code: 0,
			stdout: []string{"--workers", "--leader-elect", "--resync-period", "--namespace", "POD_SETTINGS_WATCHER_WORKERS (--workers)"}},
		{name: "version", args: []string{"--version"}, code: 0, stdout: []string{"podsettings-watcher v1.2.3"}},
		{name: "workers out of range", args: []string{"--workers", "0"}, code: 2, stderr: "--workers: 0 is out of range"},
		{name: "bad environment value names the key", env: map[string]string{"POD_SETTINGS_WATCHER_WORKERS": "many"}, code: 2,
			stderr: "POD_SETTINGS_WATCHER_WORKERS"},
		{name: "environment out of range", env: map[string]string{"POD_SETTINGS_WATCHER_WORKERS": "1000"}, code: 2, stderr: "POD_SETTINGS_WATCHER_WORKERS (--workers): 1000"},
		{name: "negative resync", args: []string{"--resync-period", "-1s"}, code: 2, stderr: "--resync-period"},
		{name: "leader timings", args: []string{"--leader-elect", "--leader-elect-lease-duration", "1s"}, code: 2, stderr: "--leader-elect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := execute(t, t.Context(), tc.args, tc.env)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", code, tc.code, stdout, stderr)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			if tc.stderr != "" {
				if !strings.Contains(stderr, tc.stderr) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
					t.Errorf("stderr %q, want one line containing %q", stderr, tc.stderr)
				}
			}
		})
	}
}

// The binary's own entry point against the real control plane: configuration from flags and
// environment, readiness, metrics, and the watcher doing its job.
func TestServiceRunsAgainstTheCluster(t *testing.T) {
	kubeconfig := env.KubeconfigFile(t)
	ctl := env.Namespace(t, "ctl", nil).Name
	team := env.Namespace(t, "team", map[string]string{"orbit/space": "team"}).Name
	addr := testenv.FreeAddress(t)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	var stderr syncBuffer
	go func() {
		done <- cli.Execute(ctx, command("test"), cli.IO{
			Args: []string{"--kubeconfig", kubeconfig, "--http-address", addr},
			Env: func(k string) (string, bool) {
				v, ok := map[string]string{"POD_SETTINGS_WATCHER_WORKERS": "3", "ORBIT_CONTROLLER_NAMESPACE": ctl}[k]
				return v, ok
			},
			Stdout: io.Discard, Stderr: &stderr,
		})
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("exit %d; log:\n%s", code, stderr.String())
		}
	}()

	testenv.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, string) {
		code, body := get(ctx, "http://"+addr+"/readyz")
		return code == http.StatusOK, fmt.Sprintf("/readyz %d %s", code, body)
	})

	ps := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "orbit.aws/v1", "kind": "PodSetting",
		"metadata": map[string]any{"name": "gpu", "labels": map[string]any{"orbit/space": "team"}},
		"spec":     map[string]any{"desc": "GPU nodes"},
	}}
	if _, err := env.Dynamic.Resource(gvr("orbit.aws", "v1", "podsettings")).Namespace(team).Create(t.Context(), ps, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func(ctx context.Context) (bool, string) {
		_, err := env.Dynamic.Resource(gvr("kubeflow.org", "v1alpha1", "poddefaults")).Namespace(team).Get(ctx, "gpu", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	testenv.Eventually(t, 10*time.Second, func(ctx context.Context) (bool, string) {
		code, body := get(ctx, "http://"+addr+"/metrics")
		return code == http.StatusOK && strings.Contains(body, `orbit_podsettings_watcher_reconcile_total{outcome="success",queue="podsettings"}`) &&
			strings.Contains(body, `orbit_podsettings_watcher_writes_total{action="create",object="poddefault"} 1`), "metrics lack the reconcile and write counters"
	})
	// The state ConfigMap went to the namespace from the environment.
	testenv.Eventually(t, 10*time.Second, func(ctx context.Context) (bool, string) {
		_, err := env.Clientset.CoreV1().ConfigMaps(ctl).Get(ctx, "orbit-controller-state", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
}

func get(ctx context.Context, url string) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// syncBuffer is a bytes.Buffer safe for the service's concurrent log writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func gvr(group, version, resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: group, Version: version, Resource: resource}
}
