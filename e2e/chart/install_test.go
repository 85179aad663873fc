package chart

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/release"
	authzv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/orbit-workbench/orbit-controller/e2e/internal/render"
	"github.com/orbit-workbench/orbit-controller/e2e/internal/repo"
	"github.com/orbit-workbench/orbit-controller/pkg/certs"
)

// helmConfig is Helm's action configuration for namespace on the test control plane.
func helmConfig(t *testing.T, namespace string) *action.Configuration {
	t.Helper()
	cfg := new(action.Configuration)
	getter := &render.RESTClientGetter{Config: env.Config, Namespace: namespace}
	logf := func(string, ...any) {}
	if testing.Verbose() {
		logf = t.Logf
	}
	if err := cfg.Init(getter, namespace, "secret", logf); err != nil {
		t.Fatalf("helm configuration: %v", err)
	}
	return cfg
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load(repo.ChartDir(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// live fetches every object of a manifest from the API server.
func live(t *testing.T, manifest string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := render.Decode(manifest)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restMapper(t)
	var out []*unstructured.Unstructured
	for _, o := range objs {
		got, err := get(t.Context(), mapper, o)
		if err != nil {
			t.Errorf("%s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
			continue
		}
		out = append(out, got)
	}
	return out
}

func restMapper(t *testing.T) meta.RESTMapper {
	t.Helper()
	m, err := (&render.RESTClientGetter{Config: env.Config}).ToRESTMapper()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func get(ctx context.Context, mapper meta.RESTMapper, o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	gvk := o.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, err
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return env.Dynamic.Resource(m.Resource).Namespace(o.GetNamespace()).Get(ctx, o.GetName(), metav1.GetOptions{})
	}
	return env.Dynamic.Resource(m.Resource).Get(ctx, o.GetName(), metav1.GetOptions{})
}

// TestInstall installs the chart with every service in the self-signed and csr modes (no
// node runs the Pods, so nothing is waited for), proves every object and the test hook are
// accepted by the API server, holds each ServiceAccount to its least privilege, upgrades and
// uninstalls.
func TestInstall(t *testing.T) {
	t.Run("self-signed", func(t *testing.T) {
		n := env.Namespace(t, "orbit", nil).Name
		cfg := helmConfig(t, n)
		vals := values(t, allEnabled, `image-replicator: {dockerConfigSecrets: [ecr-pull], inventory: {images: ["nginx:1.25"]}}`)
		rel := install(t, cfg, "orbit-ss", n, vals)
		objs := live(t, rel.Manifest)
		if len(objs) < 40 {
			t.Errorf("only %d objects installed", len(objs))
		}
		dryRunHooks(t, rel)
		checkAccess(t, n, "orbit-ss", selfSignedAccess)
		upgradeKeepsInjectedState(t, cfg, n, "orbit-ss", vals)
		uninstall(t, cfg, rel)
	})
	t.Run("csr", func(t *testing.T) {
		n := env.Namespace(t, "orbit", nil).Name
		cfg := helmConfig(t, n)
		rel := install(t, cfg, "orbit-csr", n, values(t, allEnabled, "global: {certificates: {mode: csr}}"))
		live(t, rel.Manifest)
		checkAccess(t, n, "orbit-csr", csrAccess)
		uninstall(t, cfg, rel)
	})
}

func install(t *testing.T, cfg *action.Configuration, name, namespace string, vals map[string]any) *release.Release {
	t.Helper()
	in := action.NewInstall(cfg)
	in.ReleaseName = name
	in.Namespace = namespace
	in.Wait = false
	in.Timeout = 2 * time.Minute
	rel, err := in.RunWithContext(t.Context(), loadChart(t), vals)
	if err != nil {
		t.Fatalf("helm install %s: %v", name, err)
	}
	if rel.Info.Status != release.StatusDeployed {
		t.Fatalf("release %s is %s", name, rel.Info.Status)
	}
	return rel
}

// dryRunHooks: the hooks (the `helm test` Pod) pass the API server's validation too.
func dryRunHooks(t *testing.T, rel *release.Release) {
	t.Helper()
	mapper := restMapper(t)
	var n int
	for _, h := range rel.Hooks {
		objs, err := render.Decode(h.Manifest)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			gvk := o.GroupVersionKind()
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Fatal(err)
			}
			_, err = env.Dynamic.Resource(m.Resource).Namespace(o.GetNamespace()).Create(t.Context(), o,
				metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
			if err != nil {
				t.Errorf("hook %s %s rejected: %v", o.GetKind(), o.GetName(), err)
			}
			n++
		}
	}
	if n == 0 {
		t.Error("no hooks in the release")
	}
}

// upgradeKeepsInjectedState: what the services write into Helm's objects — caBundle of the
// webhook configuration, keys of the state ConfigMap — survives `helm upgrade`, which does
// change what it owns.
func upgradeKeepsInjectedState(t *testing.T, cfg *action.Configuration, namespace, name string, vals map[string]any) {
	t.Helper()
	ctx := t.Context()
	cs := env.Clientset
	ca, err := certs.NewCA("orbit-test", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mwc := name + "-pod-modifier"
	patch, _ := json.Marshal([]map[string]any{{"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": ca.CertPEM}})
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Patch(ctx, mwc, types.JSONPatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("inject caBundle: %v", err)
	}
	state := `{"data":{"podsettingsWatcher":"{\"lastResourceVersion\":\"42\"}"}}`
	if _, err := cs.CoreV1().ConfigMaps(namespace).Patch(ctx, "orbit-controller-state", types.MergePatchType, []byte(state), metav1.PatchOptions{FieldManager: "podsettings-watcher"}); err != nil {
		t.Fatalf("write state: %v", err)
	}
	dep := name + "-pod-modifier"
	before, err := cs.AppsV1().Deployments(namespace).Get(ctx, dep, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	up := action.NewUpgrade(cfg)
	up.Namespace = namespace
	up.Timeout = 2 * time.Minute
	newVals := values(t, "pod-modifier: {replicas: 3}\nglobal: {logVerbosity: 2}")
	merge(newVals, vals)
	merge(newVals, values(t, "pod-modifier: {replicas: 3}\nglobal: {logVerbosity: 2}"))
	rel, err := up.RunWithContext(ctx, name, loadChart(t), newVals)
	if err != nil {
		t.Fatalf("helm upgrade: %v", err)
	}
	if rel.Info.Status != release.StatusDeployed || rel.Version != 2 {
		t.Fatalf("upgrade: release %s version %d", rel.Info.Status, rel.Version)
	}

	after, err := cs.AppsV1().Deployments(namespace).Get(ctx, dep, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *after.Spec.Replicas != 3 {
		t.Errorf("replicas %d after upgrade, want 3", *after.Spec.Replicas)
	}
	if a, b := after.Spec.Template.Annotations["checksum/config"], before.Spec.Template.Annotations["checksum/config"]; a == b {
		t.Error("configuration changed but the Pods would not roll (checksum/config unchanged)")
	}
	cfgMap, err := cs.CoreV1().ConfigMaps(namespace).Get(ctx, "orbit-controller-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfgMap.Data["ORBIT_CONTROLLER_LOG_VERBOSITY"]; got != "2" {
		t.Errorf("ORBIT_CONTROLLER_LOG_VERBOSITY=%q after upgrade", got)
	}
	hook, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mwc, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(hook.Webhooks[0].ClientConfig.CABundle) != string(ca.CertPEM) {
		t.Error("helm upgrade dropped the injected caBundle")
	}
	st, err := cs.CoreV1().ConfigMaps(namespace).Get(ctx, "orbit-controller-state", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Data["podsettingsWatcher"] == "" {
		t.Error("helm upgrade dropped the watchers' state")
	}
}

func uninstall(t *testing.T, cfg *action.Configuration, rel *release.Release) {
	t.Helper()
	un := action.NewUninstall(cfg)
	un.Timeout = time.Minute
	if _, err := un.Run(rel.Name); err != nil {
		t.Fatalf("helm uninstall: %v", err)
	}
	objs, err := render.Decode(rel.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restMapper(t)
	for _, o := range objs {
		_, err := get(t.Context(), mapper, o)
		if err == nil {
			// Deletion is asynchronous only for objects with finalizers; none of ours have any.
			t.Errorf("%s %s left after uninstall", o.GetKind(), o.GetName())
		} else if !apierrors.IsNotFound(err) {
			t.Errorf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
}

// access is one question to the API server's authorizer: may this service do that?
type access struct {
	service  string // ServiceAccount suffix: <release>-<service>
	verb     string
	group    string
	resource string
	sub      string
	ns       string // "" cluster-wide, "." the release namespace
	name     string // "<r>" stands for the release name
	allowed  bool
}

const ppmSA = "podsettings-poddefaults-manager"

// selfSignedAccess: what each service may and may not do (every service enabled, self-signed
// certificates, dockerConfigSecrets [ecr-pull]).
var selfSignedAccess = []access{
	// pod-modifier
	{"pod-modifier", "list", "orbit.aws", "podsettings", "", "", "", true},
	{"pod-modifier", "watch", "orbit.aws", "podsettings", "", "team-a", "", true},
	{"pod-modifier", "update", "orbit.aws", "podsettings", "", "team-a", "x", false},
	{"pod-modifier", "get", "", "namespaces", "", "", "team-a", true},
	{"pod-modifier", "delete", "", "namespaces", "", "", "team-a", false},
	{"pod-modifier", "watch", "", "configmaps", "", ".", "orbit-controller-state", true},
	{"pod-modifier", "watch", "", "configmaps", "", ".", "orbit-controller-config", false},
	{"pod-modifier", "watch", "", "configmaps", "", "team-a", "orbit-controller-state", false},
	{"pod-modifier", "patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "", "<r>-pod-modifier", true},
	{"pod-modifier", "patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "", "<r>-image-updater", false},
	{"pod-modifier", "create", "", "secrets", "", ".", "", true},
	{"pod-modifier", "create", "", "secrets", "", "team-a", "", false},
	{"pod-modifier", "update", "", "secrets", "", ".", "<r>-pod-modifier-tls", true},
	{"pod-modifier", "get", "", "secrets", "", ".", "<r>-pod-modifier-tls-ca", true},
	{"pod-modifier", "get", "", "secrets", "", ".", "<r>-image-updater-tls-ca", false},
	{"pod-modifier", "list", "", "secrets", "", ".", "", false},
	{"pod-modifier", "create", "certificates.k8s.io", "certificatesigningrequests", "", "", "", false},
	{"pod-modifier", "create", "", "pods", "", "team-a", "", false},
	// image-updater
	{"image-updater", "create", "orbit.aws", "imagereplications", "", ".", "", true},
	{"image-updater", "watch", "orbit.aws", "imagereplications", "", ".", "", true},
	{"image-updater", "create", "orbit.aws", "imagereplications", "", "team-a", "", false},
	{"image-updater", "delete", "orbit.aws", "imagereplications", "", ".", "x", false},
	{"image-updater", "patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "", "<r>-image-updater", true},
	{"image-updater", "list", "orbit.aws", "podsettings", "", "", "", false},
	// image-replicator
	{"image-replicator", "update", "orbit.aws", "imagereplications", "status", ".", "x", true},
	{"image-replicator", "patch", "orbit.aws", "imagereplications", "", ".", "x", true},
	{"image-replicator", "create", "orbit.aws", "imagereplications", "", ".", "", false},
	{"image-replicator", "get", "", "secrets", "", ".", "ecr-pull", true},
	{"image-replicator", "get", "", "secrets", "", ".", "<r>-pod-modifier-tls-ca", false},
	{"image-replicator", "update", "coordination.k8s.io", "leases", "", ".", "image-replicator", true},
	{"image-replicator", "update", "coordination.k8s.io", "leases", "", ".", "userspace-chart-manager", false},
	{"image-replicator", "patch", "", "configmaps", "", ".", "orbit-controller-state", true},
	// podsettings-watcher and poddefaults-watcher (one Pod, one ServiceAccount)
	{ppmSA, "watch", "orbit.aws", "podsettings", "", "", "", true},
	{ppmSA, "patch", "orbit.aws", "podsettings", "status", "team-a", "gpu", true},
	{ppmSA, "patch", "orbit.aws", "podsettings", "", "team-a", "gpu", false},
	{ppmSA, "create", "kubeflow.org", "poddefaults", "", "team-a-alice", "", true},
	{ppmSA, "delete", "kubeflow.org", "poddefaults", "", "team-a-alice", "gpu", true},
	{ppmSA, "watch", "", "namespaces", "", "", "", true},
	{ppmSA, "delete", "", "namespaces", "", "", "team-a", false},
	{ppmSA, "update", "coordination.k8s.io", "leases", "", ".", "podsettings-watcher", true},
	{ppmSA, "update", "coordination.k8s.io", "leases", "", ".", "poddefaults-watcher", true},
	{ppmSA, "create", "coordination.k8s.io", "leases", "", ".", "", true},
	{ppmSA, "update", "coordination.k8s.io", "leases", "", ".", "pod-modifier", false},
	{ppmSA, "patch", "", "configmaps", "", ".", "orbit-controller-state", true},
	{ppmSA, "patch", "", "configmaps", "", ".", "orbit-controller-config", false},
	{ppmSA, "get", "", "secrets", "", "team-a", "x", false},
	// userspace-chart-manager
	{"userspace-chart-manager", "delete", "", "namespaces", "", "", "team-a-alice", true},
	{"userspace-chart-manager", "watch", "", "configmaps", "", "team-a", "orbit-team-context", true},
	{"userspace-chart-manager", "patch", "", "namespaces", "", "", "team-a", false},
	{"userspace-chart-manager", "create", "rbac.authorization.k8s.io", "rolebindings", "", "team-a", "", false},
	{"userspace-chart-manager", "create", "", "secrets", "", "team-a", "", true},
	{"userspace-chart-manager", "delete", "kubeflow.org", "profiles", "", "", "team-a", true},
	{"userspace-chart-manager", "create", "apps", "deployments", "", "team-a", "", true},
	{"userspace-chart-manager", "create", "rbac.authorization.k8s.io", "clusterroles", "", "", "", false},
	{"userspace-chart-manager", "create", "", "pods", "", "team-a", "", false},
	{"userspace-chart-manager", "update", "coordination.k8s.io", "leases", "", ".", "userspace-chart-manager", true},
}

// csrAccess: the csr mode's additions and what it drops.
var csrAccess = []access{
	{"pod-modifier", "create", "certificates.k8s.io", "certificatesigningrequests", "", "", "", true},
	{"pod-modifier", "update", "certificates.k8s.io", "certificatesigningrequests", "approval", "", "x", true},
	{"pod-modifier", "approve", "certificates.k8s.io", "signers", "", "", "beta.eks.amazonaws.com/app-serving", true},
	{"pod-modifier", "approve", "certificates.k8s.io", "signers", "", "", "kubernetes.io/kube-apiserver-client", false},
	{"pod-modifier", "get", "", "configmaps", "", ".", "kube-root-ca.crt", true},
	{"pod-modifier", "get", "", "secrets", "", ".", "<r>-pod-modifier-tls", true},
	{"pod-modifier", "get", "", "secrets", "", ".", "<r>-pod-modifier-tls-ca", false},
	{"image-updater", "approve", "certificates.k8s.io", "signers", "", "", "beta.eks.amazonaws.com/app-serving", true},
}

func checkAccess(t *testing.T, namespace, release string, cases []access) {
	t.Helper()
	for _, c := range cases {
		sa := release + "-" + c.service
		ns := c.ns
		if ns == "." {
			ns = namespace
		}
		name := c.name
		if len(name) > 3 && name[:3] == "<r>" {
			name = release + name[3:]
		}
		review := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User:   fmt.Sprintf("system:serviceaccount:%s:%s", namespace, sa),
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
			ResourceAttributes: &authzv1.ResourceAttributes{
				Namespace: ns, Verb: c.verb, Group: c.group, Resource: c.resource, Subresource: c.sub, Name: name,
			},
		}}
		got, err := env.Clientset.AuthorizationV1().SubjectAccessReviews().Create(t.Context(), review, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("SubjectAccessReview: %v", err)
		}
		if got.Status.Allowed != c.allowed {
			what := c.resource
			if c.sub != "" {
				what += "/" + c.sub
			}
			t.Errorf("%s %s %s %q in %q: allowed=%v, want %v", sa, c.verb, what, name, ns, got.Status.Allowed, c.allowed)
		}
	}
}
