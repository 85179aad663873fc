package rbac

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/orbit-workbench/orbit-controller/e2e/internal/render"
	"github.com/orbit-workbench/orbit-controller/e2e/internal/repo"
	"github.com/orbit-workbench/orbit-controller/e2e/platform"
)

// The platform's system namespace is the one the chart is installed into.
const (
	release   = "orbit-controller"
	namespace = "orbit-system"
)

// chartValues enable every service, with self-signed webhook certificates and images copied
// registry to registry. The mirror's address is known only once the platform's registries run,
// so repoHost is a placeholder: no RBAC rule depends on it, and the services are given the real
// one by flag (see localOverrides).
const chartValues = `
global:
  certificates: {mode: self-signed}
  imageReplication:
    repoHost: mirror.invalid
    repoPrefix: orbit-demo
    backend: copy
userspace-chart-manager: {enabled: true}
pod-modifier: {enabled: true}
podsettings-poddefaults-manager: {enabled: true}
image-updater: {enabled: true}
image-replicator: {enabled: true}
`

// appliedKinds are the rendered objects the test creates: the identities, their permissions and
// the configuration and state ConfigMaps. Deployments, Services and PodDisruptionBudgets have
// no meaning without a kubelet (the services run as local processes), and the platform
// registers each MutatingWebhookConfiguration itself, by URL, under the chart's name.
var appliedKinds = []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap"}

// chart is what the test takes from the rendered release.
type chart struct {
	objects []*unstructured.Unstructured // of appliedKinds
	args    map[string][]string          // service → its container's arguments
	account map[string]string            // service → its Pod's ServiceAccount
	webhook map[string]string            // webhook service → its MutatingWebhookConfiguration
	config  map[string]string            // data of orbit-controller-config (every container's envFrom)
}

func renderChart(t *testing.T) *chart {
	t.Helper()
	vals, err := render.Values(chartValues)
	if err != nil {
		t.Fatal(err)
	}
	r, err := render.Chart(repo.ChartDir(t), release, namespace, vals)
	if err != nil {
		t.Fatalf("render the chart: %v", err)
	}
	c := &chart{args: map[string][]string{}, account: map[string]string{}, webhook: map[string]string{}}
	for _, o := range r.Objects {
		if slices.Contains(appliedKinds, o.GetKind()) {
			c.objects = append(c.objects, o)
		}
	}
	for _, o := range r.All("Deployment") {
		var d appsv1.Deployment
		if err := render.Into(o, &d); err != nil {
			t.Fatal(err)
		}
		// podsettings-watcher and poddefaults-watcher are two containers of one Deployment.
		for _, ctr := range d.Spec.Template.Spec.Containers {
			svc := serviceOf(ctr.Image)
			if _, dup := c.args[svc]; dup {
				t.Fatalf("the chart runs %s twice", svc)
			}
			c.args[svc] = ctr.Args
			c.account[svc] = d.Spec.Template.Spec.ServiceAccountName
			if !slices.ContainsFunc(ctr.EnvFrom, func(e corev1.EnvFromSource) bool {
				return e.ConfigMapRef != nil && e.ConfigMapRef.Name == release+"-config"
			}) {
				t.Fatalf("container %s does not take its environment from %s-config", ctr.Name, release)
			}
		}
	}
	for _, svc := range services {
		if c.args[svc] == nil || c.account[svc] == "" {
			t.Fatalf("the chart runs no container of %s with a ServiceAccount", svc)
		}
	}
	// A webhook is named <service>.<release>.orbit.aws.
	for _, o := range r.All("MutatingWebhookConfiguration") {
		hooks, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
		for _, h := range hooks {
			name, _ := h.(map[string]any)["name"].(string)
			svc, _, _ := strings.Cut(name, ".")
			c.webhook[svc] = o.GetName()
		}
	}
	for _, svc := range []string{"pod-modifier", "image-updater"} {
		if c.webhook[svc] == "" {
			t.Fatalf("the chart renders no MutatingWebhookConfiguration for %s", svc)
		}
	}
	cm := r.Find("ConfigMap", release+"-config")
	if cm == nil {
		t.Fatalf("the chart renders no ConfigMap %s-config", release)
	}
	c.config, _, _ = unstructured.NestedStringMap(cm.Object, "data")
	return c
}

// serviceOf is the service an image holds: the last element of its repository.
func serviceOf(image string) string {
	name := image[strings.LastIndex(image, "/")+1:]
	if i := strings.IndexAny(name, ":@"); i >= 0 {
		name = name[:i]
	}
	return name
}

// localOverrides are the arguments appended to the chart's for a service to work as a local
// process against the platform's loopback fixtures (pflag keeps a flag's last value). The
// platform itself appends --kubeconfig (the impersonating one), --http-address and
// --listen-address (free loopback ports instead of :8080/:8081/:8443), --log-format=console and
// --cert-extra-hosts=127.0.0.1 (its webhook configurations call the webhooks by loopback URL,
// not through the chart's Service). Everything else — leader election and its Lease, the
// certificate Secret, the webhook configuration whose caBundle is injected, the namespace, the
// replication backend — is exactly as the chart renders it.
//
// Not reproduced: the containers' own env (GOMEMLIMIT from the memory limit; HOME and XDG_*
// pointing at the emptyDir of a read-only root filesystem). They concern the container, not
// what the service may do in the cluster.
func localOverrides(svc string, p *platform.Platform) []string {
	switch svc {
	case "image-updater", "image-replicator":
		// The rendered IMAGE_REPLICATIONS_REPO_HOST is a placeholder (see chartValues): point
		// both at the platform's mirror registry. The prefix comes from the chart.
		return []string{"--repo-host=" + p.Fixtures.MirrorHost}
	}
	return nil
}

// removal takes one verb away from one rule of one (Cluster)Role, and names the service that
// needs it, so the test can check the verb is really gone for that service's ServiceAccount.
type removal struct {
	kind, object, group, resource, verb string
	service                             string
}

func (rm removal) String() string {
	return fmt.Sprintf("%s %s: %s on %s", rm.kind, rm.object, rm.verb, strings.TrimPrefix(rm.resource+"."+rm.group, "."))
}

// apply removes the verb from every rule of the object that grants it on the resource; it fails
// when none does (the chart changed and the case no longer tests anything).
func (rm removal) apply(objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		if o.GetKind() != rm.kind || o.GetName() != rm.object {
			continue
		}
		rules, _, err := unstructured.NestedSlice(o.Object, "rules")
		if err != nil {
			return err
		}
		removed := 0
		kept := rules[:0]
		for _, x := range rules {
			rule := x.(map[string]any)
			groups, _, _ := unstructured.NestedStringSlice(rule, "apiGroups")
			resources, _, _ := unstructured.NestedStringSlice(rule, "resources")
			verbs, _, _ := unstructured.NestedStringSlice(rule, "verbs")
			if slices.Contains(groups, rm.group) && slices.Contains(resources, rm.resource) && slices.Contains(verbs, rm.verb) {
				if len(resources) > 1 || len(groups) > 1 {
					return fmt.Errorf("%s: the rule granting it covers more than %s; split it in the test", rm, rm.resource)
				}
				verbs = slices.DeleteFunc(verbs, func(v string) bool { return v == rm.verb })
				removed++
				if len(verbs) == 0 {
					continue // a rule without verbs is invalid: drop it
				}
				rule["verbs"] = toAny(verbs)
			}
			kept = append(kept, rule)
		}
		if removed == 0 {
			return fmt.Errorf("%s: no rule grants it", rm)
		}
		return unstructured.SetNestedSlice(o.Object, kept, "rules")
	}
	return fmt.Errorf("%s: no such object rendered", rm)
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func saUser(account string) string { return "system:serviceaccount:" + namespace + ":" + account }

// impersonating turns the platform's admin kubeconfig into one that acts as the ServiceAccount,
// with the groups the API server gives a ServiceAccount token.
func impersonating(admin []byte, account string) ([]byte, error) {
	cfg, err := clientcmd.Load(admin)
	if err != nil {
		return nil, fmt.Errorf("parse admin kubeconfig: %w", err)
	}
	kctx := cfg.Contexts[cfg.CurrentContext]
	if kctx == nil || cfg.AuthInfos[kctx.AuthInfo] == nil {
		return nil, fmt.Errorf("admin kubeconfig: no user for the current context %q", cfg.CurrentContext)
	}
	auth := cfg.AuthInfos[kctx.AuthInfo]
	auth.Impersonate = saUser(account)
	auth.ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}
	return clientcmd.Write(*cfg)
}

func clientFor(kubeconfig []byte) (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// checkIdentity makes sure a kubeconfig acts as the ServiceAccount and nothing more: the API
// server names it so, and refuses it something no service is granted.
func checkIdentity(ctx context.Context, kubeconfig []byte, account string) error {
	kube, err := clientFor(kubeconfig)
	if err != nil {
		return err
	}
	review, err := kube.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("who am I: %w", err)
	}
	if got := review.Status.UserInfo.Username; got != saUser(account) {
		return fmt.Errorf("kubeconfig acts as %q, want %q", got, saUser(account))
	}
	allowed, err := can(ctx, kube, authorizationv1.ResourceAttributes{Verb: "delete", Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"})
	if err != nil {
		return err
	}
	if allowed {
		return fmt.Errorf("%s may delete CRDs: the kubeconfig is not bound by RBAC", saUser(account))
	}
	return nil
}

func can(ctx context.Context, kube *kubernetes.Clientset, attrs authorizationv1.ResourceAttributes) (bool, error) {
	review, err := kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("access review %v: %w", attrs, err)
	}
	return review.Status.Allowed, nil
}

// applyObjects creates the rendered objects with the admin client.
func applyObjects(ctx context.Context, p *platform.Platform, objs []*unstructured.Unstructured) error {
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(p.Env.Clientset.Discovery()))
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("map %s: %w", gvk, err)
		}
		var client dynamic.ResourceInterface = p.Env.Dynamic.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			if o.GetNamespace() != namespace {
				return fmt.Errorf("%s %s renders into namespace %q, want %s", o.GetKind(), o.GetName(), o.GetNamespace(), namespace)
			}
			client = p.Env.Dynamic.Resource(m.Resource).Namespace(namespace)
		}
		if _, err := client.Create(ctx, o, metav1.CreateOptions{FieldManager: "rbac-test"}); err != nil {
			return fmt.Errorf("create %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return nil
}

// result is a played scenario.
type result struct {
	report *platform.Report
	p      *platform.Platform
	ok     bool
}

// play starts a platform whose services run with the chart's arguments as their chart
// ServiceAccounts, bound only by the chart's RBAC (less rm, if given), and plays the scenario.
// The platform is stopped when the test ends.
func play(t *testing.T, rm *removal) result {
	c := renderChart(t)
	if rm != nil {
		if err := rm.apply(c.objects); err != nil {
			t.Fatal(err)
		}
	}
	// Every container takes orbit-controller-config as its environment (checked in renderChart);
	// the service processes inherit the test's.
	for k, v := range c.config {
		t.Setenv(k, v)
	}
	kubeconfigs := map[string][]byte{}
	var plat *platform.Platform
	opts := platform.Options{
		BinDir:  binDir,
		WorkDir: t.TempDir(),
		Prepare: func(ctx context.Context, p *platform.Platform) error {
			plat = p
			if err := applyObjects(ctx, p, c.objects); err != nil {
				return err
			}
			admin, err := os.ReadFile(p.Kubeconfig)
			if err != nil {
				return err
			}
			for _, svc := range services {
				kc, err := impersonating(admin, c.account[svc])
				if err != nil {
					return err
				}
				if err := checkIdentity(ctx, kc, c.account[svc]); err != nil {
					return fmt.Errorf("%s: %w", svc, err)
				}
				kubeconfigs[svc] = kc
			}
			if rm != nil {
				// Another rule bound to the same ServiceAccount (podsettings-watcher and
				// poddefaults-watcher share one) may grant the verb still.
				kube, err := clientFor(kubeconfigs[rm.service])
				if err != nil {
					return err
				}
				resource, sub, _ := strings.Cut(rm.resource, "/")
				ns := "any" // a ClusterRole's rules hold in every namespace
				if rm.kind == "Role" {
					ns = namespace
				}
				allowed, err := can(ctx, kube, authorizationv1.ResourceAttributes{Verb: rm.verb, Group: rm.group, Resource: resource, Subresource: sub, Namespace: ns})
				if err != nil {
					return err
				}
				if allowed {
					return fmt.Errorf("%s: removed, but %s is still granted it by another rule", rm, saUser(c.account[rm.service]))
				}
			}
			return nil
		},
		Service: func(name string, spec platform.ServiceSpec) (platform.ServiceSpec, error) {
			if kubeconfigs[name] == nil {
				return spec, fmt.Errorf("no kubeconfig prepared for %s", name)
			}
			spec.Kubeconfig = kubeconfigs[name]
			spec.Args = append(slices.Clone(c.args[name]), localOverrides(name, plat)...)
			if w, ok := c.webhook[name]; ok {
				spec.WebhookConfig = w
			}
			return spec, nil
		},
	}
	r := platform.NewReport(t.Output())
	p, err := platform.Start(t.Context(), opts, r)
	if p != nil {
		t.Cleanup(func() { p.Stop(r) })
	}
	if err != nil {
		r.Fail(err)
		r.Summary()
		return result{report: r, p: p}
	}
	ok := platform.PlayScenario(t.Context(), p, r)
	r.Summary()
	return result{report: r, p: p, ok: ok}
}

// logs is the tail of every service's log.
func (res result) logs(lines int) string {
	if res.p == nil || res.p.LogDir == "" {
		return ""
	}
	var b strings.Builder
	for _, svc := range services {
		fmt.Fprintf(&b, "--- %s\n%s\n", svc, tail(filepath.Join(res.p.LogDir, svc+".log"), lines))
	}
	return b.String()
}

// forbidden returns each log line of svc in which the API server refused it something.
func (res result) forbidden(svc string) []string {
	if res.p == nil || res.p.LogDir == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(res.p.LogDir, svc+".log"))
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(strings.ToLower(l), "forbidden") {
			out = append(out, l)
		}
	}
	return out
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestScenarioWithChartRBAC: with exactly the chart's RBAC every service does its part of the
// scenario, and none is refused anything on the way (a refusal the scenario survives — a state
// write, a retried watch — is still a missing rule).
func TestScenarioWithChartRBAC(t *testing.T) {
	res := play(t, nil)
	for _, svc := range services {
		if lines := res.forbidden(svc); len(lines) > 0 {
			t.Errorf("%s was refused by the API server %d times under the chart's RBAC, first:\n%s", svc, len(lines), strings.Join(lines[:min(len(lines), 5)], "\n"))
		}
	}
	if !res.ok {
		t.Fatalf("the scenario failed with the chart's RBAC at %s\n%s", res.report.Failed(), res.logs(25))
	}
}

// TestScenarioFailsWithoutVerb: take away one verb a service needs and the scenario fails at
// the step that verb serves, and the service's log shows the refusal — so the first test's
// pass means the chart's rules are in force, not that nothing checks them.
func TestScenarioFailsWithoutVerb(t *testing.T) {
	cases := []struct {
		name string
		rm   removal
		// step is the scenario step that must fail; detail a part of its reason.
		step, detail string
	}{{
		// The PodDefault is still made, but the PodSetting's Valid condition cannot be written.
		// (create on poddefaults would not do: poddefaults-watcher's ClusterRole grants it to
		// the same ServiceAccount.)
		name:   "podsettings-watcher cannot patch podsettings/status",
		rm:     removal{kind: "ClusterRole", object: release + "-podsettings-watcher", group: "orbit.aws", resource: "podsettings/status", verb: "patch", service: "podsettings-watcher"},
		step:   "a team appears with a PodSetting (the login hook's part)",
		detail: "PodSetting not yet marked Valid",
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := play(t, &tc.rm)
			failed := res.report.Failed()
			if res.ok {
				t.Fatalf("the scenario passed without %s", tc.rm)
			}
			if !strings.HasPrefix(failed, tc.step+":") || !strings.Contains(failed, tc.detail) {
				t.Fatalf("without %s the scenario failed at\n  %s\nwant step %q (%s)\n%s", tc.rm, failed, tc.step, tc.detail, res.logs(25))
			}
			if len(res.forbidden(tc.rm.service)) == 0 {
				t.Errorf("%s logged no refusal without %s\n%s", tc.rm.service, tc.rm, res.logs(25))
			}
		})
	}
}
