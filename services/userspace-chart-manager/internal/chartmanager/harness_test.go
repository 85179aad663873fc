package chartmanager_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/orbit-workbench/orbit-controller/pkg/health"
	"github.com/orbit-workbench/orbit-controller/pkg/testenv"
	"github.com/orbit-workbench/orbit-controller/services/userspace-chart-manager/internal/chartmanager"
	"github.com/orbit-workbench/orbit-controller/services/userspace-chart-manager/internal/helm/helmtest"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	// The S3 tests use the real SDK against a loopback bucket: static keys, and no probing
	// of instance metadata or the developer's AWS files.
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
	} {
		_ = os.Setenv(k, v)
	}
	testenv.Main(m, testenv.Options{}, &env)
}

func profileGVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "kubeflow.org", Version: "v1", Resource: "profiles"}
}

// suffix is a short random DNS-safe string.
func suffix() string { return strings.ToLower(rand.Text()[:6]) }

// syncBuffer collects the service's log lines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the decoded log lines whose fields contain every wanted substring.
func (b *syncBuffer) lines(want ...string) []map[string]any {
	b.mu.Lock()
	text := b.buf.String()
	b.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(text, "\n") {
		ok := line != ""
		for _, w := range want {
			ok = ok && strings.Contains(line, w)
		}
		if !ok {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// service is the chart manager running in-process against the test control plane.
type service struct {
	logs   *syncBuffer
	reg    *prometheus.Registry
	checks *health.Checks
	stop   func()
}

func defaultTestOptions(t testing.TB) chartmanager.Options {
	opts := chartmanager.DefaultOptions()
	opts.Namespace = env.Namespace(t, "orbit-system", nil).Name
	opts.IndexTTL = 200 * time.Millisecond
	opts.Identity = "test-" + suffix()
	return opts
}

func startService(t testing.TB, opts chartmanager.Options) *service {
	t.Helper()
	return startServiceWithConfig(t, env.Config, opts, true)
}

func startServiceWithConfig(t testing.TB, cfg *rest.Config, opts chartmanager.Options, waitReady bool) *service {
	t.Helper()
	s := &service{logs: &syncBuffer{}, reg: prometheus.NewRegistry(), checks: health.NewChecks()}
	log := zerolog.New(s.logs).With().Timestamp().Logger()
	ctx, cancel := context.WithCancel(log.WithContext(context.Background()))
	done := make(chan error, 1)
	go func() { done <- chartmanager.Run(ctx, cfg, opts, s.reg, s.checks) }()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("service stopped with %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("service did not stop within 30s")
			}
			if t.Failed() {
				logs := s.logs.String()
				if len(logs) > 20000 {
					logs = logs[len(logs)-20000:]
				}
				t.Logf("service logs (tail):\n%s", logs)
			}
		})
	}
	t.Cleanup(s.stop)
	if waitReady {
		testenv.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, string) {
			select {
			case err := <-done:
				t.Fatalf("service stopped before it was ready: %v", err)
			default:
			}
			if err := s.checks.Ready(ctx); err != nil {
				return false, err.Error()
			}
			return true, ""
		})
	}
	return s
}

func (s *service) counter(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	families, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

// charts packages the test charts in testdata.
func chart(t testing.TB, name, version string) helmtest.Archive {
	t.Helper()
	return helmtest.Package(t, filepath.Join("testdata", "charts", name), version)
}

// team creates a team namespace (named after the team) and its team context.
func team(t testing.TB, repoURL string) string {
	t.Helper()
	name := "t" + suffix()
	env.CreateNamespace(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"orbit/space": "team", "orbit/team": name, "orbit/env": "dev",
	}}})
	setTeamContext(t, name, fmt.Sprintf(`{"UserHelmRepository":%q,"EksPodRoleArn":"arn:aws:iam::1:role/x"}`, repoURL))
	return name
}

// setTeamContext writes the team context's raw JSON.
func setTeamContext(t testing.TB, team, raw string) {
	t.Helper()
	cms := env.Clientset.CoreV1().ConfigMaps(team)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "orbit-team-context"}, Data: map[string]string{"team": raw}}
	_, err := cms.Create(context.Background(), cm, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		_, err = cms.Update(context.Background(), cm, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatalf("write team context of %s: %v", team, err)
	}
}

// user creates a user namespace <team>-<user>; extra labels are merged in (an empty value
// removes a label), and owner "" leaves the annotation out.
func user(t testing.TB, team, name, owner string, extra map[string]string) string {
	t.Helper()
	labels := map[string]string{"orbit/space": "user", "orbit/team": team, "orbit/env": "dev", "orbit/user": name}
	for k, v := range extra {
		if v == "" {
			delete(labels, k)
		} else {
			labels[k] = v
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: team + "-" + name, Labels: labels}}
	if owner != "" {
		ns.Annotations = map[string]string{"owner": owner}
	}
	return env.CreateNamespace(t, ns).Name
}

func deleteNamespace(t testing.TB, name string) {
	t.Helper()
	err := env.Clientset.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("delete namespace %s: %v", name, err)
	}
}

// record is what a release record Secret's labels say.
type record struct {
	name, status, userNamespace, managedBy string
}

// records reads the release records in a namespace from the API server, by release name.
func records(ctx context.Context, namespace string) (map[string]record, error) {
	list, err := env.Clientset.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm"})
	if err != nil {
		return nil, err
	}
	out := map[string]record{}
	for _, s := range list.Items {
		if s.Type != "helm.sh/release.v1" {
			continue
		}
		out[s.Labels["name"]] = record{
			name: s.Labels["name"], status: s.Labels["status"],
			userNamespace: s.Labels["orbit/user-namespace"], managedBy: s.Labels["app.kubernetes.io/managed-by"],
		}
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// waitReleases waits until the namespace holds exactly the given releases, all deployed.
func waitReleases(t testing.TB, namespace string, timeout time.Duration, want ...string) {
	t.Helper()
	sort.Strings(want)
	testenv.Eventually(t, timeout, func(ctx context.Context) (bool, string) {
		recs, err := records(ctx, namespace)
		if err != nil {
			return false, err.Error()
		}
		got := sortedKeys(recs)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			return false, fmt.Sprintf("releases in %s: %v, want %v", namespace, got, want)
		}
		for _, r := range recs {
			if r.status != "deployed" {
				return false, fmt.Sprintf("release %s is %s", r.name, r.status)
			}
		}
		return true, ""
	})
}

func configMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error) {
	return env.Clientset.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
}

func createProfile(t testing.TB, name, team string, finalizers ...string) {
	t.Helper()
	p := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kubeflow.org/v1", "kind": "Profile",
		"metadata": map[string]any{"name": name, "labels": map[string]any{"orbit/team": team}},
		"spec":     map[string]any{"owner": map[string]any{"kind": "User", "name": name + "@example.com"}},
	}}
	if len(finalizers) > 0 {
		p.SetFinalizers(finalizers)
	}
	if _, err := env.Dynamic.Resource(profileGVR()).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Profile %s: %v", name, err)
	}
	t.Cleanup(func() {
		removeFinalizers(t, name)
		_ = env.Dynamic.Resource(profileGVR()).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

func removeFinalizers(t testing.TB, profile string) {
	t.Helper()
	patch := []byte(`{"metadata":{"finalizers":null}}`)
	_, err := env.Dynamic.Resource(profileGVR()).Patch(context.Background(), profile, "application/merge-patch+json", patch, metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("remove finalizers of Profile %s: %v", profile, err)
	}
}

func profileExists(ctx context.Context, name string) (bool, error) {
	_, err := env.Dynamic.Resource(profileGVR()).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// namespaceState is "active", "terminating" or "gone".
func namespaceState(ctx context.Context, name string) (string, error) {
	ns, err := env.Clientset.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "gone", nil
	}
	if err != nil {
		return "", err
	}
	if ns.DeletionTimestamp != nil {
		return "terminating", nil
	}
	return "active", nil
}
