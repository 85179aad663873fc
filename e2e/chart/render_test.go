package chart

import (
	"maps"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/orbit-workbench/orbit-controller/e2e/internal/render"
	"github.com/orbit-workbench/orbit-controller/e2e/internal/repo"
)

// configKeys are the environment keys of SPEC §2, all of them in orbit-controller-config.
var configKeys = []string{
	"ORBIT_CONTROLLER_DEBUG", "ORBIT_CONTROLLER_LOG_VERBOSITY",
	"USERSPACE_CHART_MANAGER_WORKERS", "POD_SETTINGS_WATCHER_WORKERS", "POD_DEFAULTS_WATCHER_WORKERS",
	"IMAGE_REPLICATIONS_WATCHER_WORKERS", "IMAGE_REPLICATIONS_REPO_HOST", "IMAGE_REPLICATIONS_REPO_PREFIX",
	"IMAGE_REPLICATIONS_CODEBUILD_PROJECT", "IMAGE_REPLICATIONS_CODEBUILD_TIMEOUT", "ORBIT_CODEBUILD_IMAGE",
	"IMAGE_REPLICATIONS_REPLICATE_EXTERNAL_REPOS", "MAX_REPLICATION_ATTEMPTS",
}

func TestRender(t *testing.T) {
	ppm := full("podsettings-poddefaults-manager")
	defaultDeployments := map[string][]string{
		full("userspace-chart-manager"): {"userspace-chart-manager"},
		full("pod-modifier"):            {"pod-modifier"},
		ppm:                             {"podsettings-watcher", "poddefaults-watcher"},
	}
	allDeployments := maps.Clone(defaultDeployments)
	allDeployments[full("image-updater")] = []string{"image-updater"}
	allDeployments[full("image-replicator")] = []string{"image-replicator"}
	allWebhooks := []string{full("image-updater"), full("pod-modifier")}

	cases := []struct {
		name        string
		values      []string
		deployments map[string][]string
		webhooks    []string
		check       func(t *testing.T, r *render.Result)
	}{{
		name:        "defaults",
		deployments: defaultDeployments,
		webhooks:    []string{full("pod-modifier")},
		check: func(t *testing.T, r *render.Result) {
			cm := r.Find("ConfigMap", "orbit-controller-config")
			data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
			if got := slices.Sorted(maps.Keys(data)); !slices.Equal(got, slices.Sorted(slices.Values(configKeys))) {
				t.Errorf("orbit-controller-config keys %v, want SPEC §2's %v", got, configKeys)
			}
			if data["POD_SETTINGS_WATCHER_WORKERS"] != "4" || data["ORBIT_CONTROLLER_DEBUG"] != "false" || data["MAX_REPLICATION_ATTEMPTS"] != "3" || data["IMAGE_REPLICATIONS_CODEBUILD_TIMEOUT"] != "30" {
				t.Errorf("orbit-controller-config data %v", data)
			}
			state := r.Find("ConfigMap", "orbit-controller-state")
			if state == nil {
				t.Fatal("no orbit-controller-state ConfigMap")
			}
			if _, ok := state.Object["data"]; ok {
				t.Error("orbit-controller-state renders data: an upgrade would reset the watchers' keys")
			}
			for _, kind := range []string{"Certificate", "Issuer", "ServiceMonitor"} {
				if names := r.Names(kind); len(names) > 0 {
					t.Errorf("unexpected %s %v", kind, names)
				}
			}
			pm := container(t, deployment(t, r, full("pod-modifier")), "pod-modifier")
			wantFlag(t, pm, "cert-mode", "self-signed")
			wantFlag(t, pm, "listen-address", ":8443")
			noFlag(t, pm, "csr-signer-name")
			role := rules(t, r, "Role", full("pod-modifier"))
			for _, name := range []string{full("pod-modifier-tls"), full("pod-modifier-tls-ca")} {
				if !grants(role, "update", "", "secrets", name) {
					t.Errorf("pod-modifier may not update Secret %s", name)
				}
			}
			if grants(role, "get", "", "secrets", "some-other-secret") {
				t.Error("pod-modifier may read any Secret")
			}
			// The two watchers: one Pod, one port each, their own roles on the Pod's account.
			d := deployment(t, r, ppm)
			wantFlag(t, container(t, d, "podsettings-watcher"), "http-address", ":8080")
			wantFlag(t, container(t, d, "poddefaults-watcher"), "http-address", ":8081")
			for _, svc := range []string{"podsettings-watcher", "poddefaults-watcher"} {
				if !grants(rules(t, r, "Role", full(svc)), "update", "coordination.k8s.io", "leases", svc) {
					t.Errorf("%s may not renew its Lease %s", svc, svc)
				}
			}
			if d.Spec.Strategy.RollingUpdate != nil {
				t.Error("watcher Deployment with the webhooks' surge strategy")
			}
			if names := r.Names("PodDisruptionBudget"); !slices.Equal(names, []string{full("pod-modifier")}) {
				t.Errorf("PodDisruptionBudgets %v, want the pod-modifier's only", names)
			}
			if ts := deployment(t, r, full("pod-modifier")).Spec.Template.Spec.TopologySpreadConstraints; len(ts) != 2 || ts[0].LabelSelector == nil || ts[0].LabelSelector.MatchLabels["app.kubernetes.io/name"] != "pod-modifier" {
				t.Errorf("pod-modifier topologySpreadConstraints %+v", ts)
			}
		},
	}, {
		name:        "all services, self-signed",
		values:      []string{allEnabled},
		deployments: allDeployments,
		webhooks:    allWebhooks,
		check: func(t *testing.T, r *render.Result) {
			data, _, _ := unstructured.NestedStringMap(r.Find("ConfigMap", "orbit-controller-config").Object, "data")
			if data["IMAGE_REPLICATIONS_REPO_HOST"] != "123456789012.dkr.ecr.us-west-2.amazonaws.com" || data["IMAGE_REPLICATIONS_REPO_PREFIX"] != "orbit-dev" {
				t.Errorf("mirror settings not in orbit-controller-config: %v", data)
			}
			iu := container(t, deployment(t, r, full("image-updater")), "image-updater")
			wantFlag(t, iu, "replication-backend", "codebuild")
			wantFlag(t, container(t, deployment(t, r, full("image-replicator")), "image-replicator"), "backend", "codebuild")
			if !grants(rules(t, r, "Role", full("image-updater")), "create", "orbit.aws", "imagereplications", "") {
				t.Error("image-updater may not create ImageReplications")
			}
		},
	}, {
		name:        "all services, csr",
		values:      []string{allEnabled, "global: {certificates: {mode: csr, csr: {signerName: example.com/serving}}}"},
		deployments: allDeployments,
		webhooks:    allWebhooks,
		check: func(t *testing.T, r *render.Result) {
			for _, svc := range []string{"pod-modifier", "image-updater"} {
				c := container(t, deployment(t, r, full(svc)), svc)
				wantFlag(t, c, "cert-mode", "csr")
				wantFlag(t, c, "csr-signer-name", "example.com/serving")
				cr := rules(t, r, "ClusterRole", full(svc))
				if !grants(cr, "approve", "certificates.k8s.io", "signers", "example.com/serving") || grants(cr, "approve", "certificates.k8s.io", "signers", "kubernetes.io/kubelet-serving") {
					t.Errorf("%s: CSR approval not limited to its signer", svc)
				}
				if !grants(cr, "create", "certificates.k8s.io", "certificatesigningrequests", "") {
					t.Errorf("%s may not create CSRs", svc)
				}
				if grants(rules(t, r, "Role", full(svc)), "get", "", "secrets", full(svc)+"-tls-ca") {
					t.Errorf("%s may read a CA Secret it has no use for in csr mode", svc)
				}
			}
		},
	}, {
		name:        "all services, cert-manager",
		values:      []string{allEnabled, "global: {certificates: {mode: cert-manager}}"},
		deployments: allDeployments,
		webhooks:    allWebhooks,
		check: func(t *testing.T, r *render.Result) {
			if got := r.Names("Issuer"); !slices.Equal(got, []string{full("selfsigned")}) {
				t.Errorf("Issuers %v", got)
			}
			if got := slices.Sorted(slices.Values(r.Names("Certificate"))); !slices.Equal(got, allWebhooks) {
				t.Errorf("Certificates %v, want %v", got, allWebhooks)
			}
			for _, svc := range []string{"pod-modifier", "image-updater"} {
				c := container(t, deployment(t, r, full(svc)), svc)
				wantFlag(t, c, "cert-mode", "files")
				noFlag(t, c, "cert-secret")
				issuer, _, _ := unstructured.NestedString(r.Find("Certificate", full(svc)).Object, "spec", "issuerRef", "name")
				if issuer != full("selfsigned") {
					t.Errorf("Certificate %s issuer %q", full(svc), issuer)
				}
				if r.Find("ClusterRole", full(svc)) != nil && grants(rules(t, r, "ClusterRole", full(svc)), "patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", full(svc)) {
					t.Errorf("%s may patch its webhook configuration although cainjector owns caBundle", svc)
				}
				if r.Find("Role", full(svc)) != nil && grants(rules(t, r, "Role", full(svc)), "get", "", "secrets", full(svc)+"-tls") {
					t.Errorf("%s may read Secrets although it only mounts one", svc)
				}
			}
		},
	}, {
		name:        "cert-manager with an existing issuer",
		values:      []string{"global: {certificates: {mode: cert-manager, certManager: {issuerRef: {name: corp-ca, kind: ClusterIssuer}}}}"},
		deployments: defaultDeployments,
		webhooks:    []string{full("pod-modifier")},
		check: func(t *testing.T, r *render.Result) {
			if got := r.Names("Issuer"); len(got) != 0 {
				t.Errorf("Issuer rendered although one is given: %v", got)
			}
			ref, _, _ := unstructured.NestedStringMap(r.Find("Certificate", full("pod-modifier")).Object, "spec", "issuerRef")
			if ref["name"] != "corp-ca" || ref["kind"] != "ClusterIssuer" || ref["group"] != "cert-manager.io" {
				t.Errorf("issuerRef %v", ref)
			}
		},
	}, {
		name:        "service monitors, one watcher, cluster-admin charts",
		values:      []string{allEnabled, monitorsValues},
		deployments: map[string][]string{full("userspace-chart-manager"): {"userspace-chart-manager"}, full("pod-modifier"): {"pod-modifier"}, ppm: {"podsettings-watcher"}, full("image-updater"): {"image-updater"}, full("image-replicator"): {"image-replicator"}},
		webhooks:    allWebhooks,
		check: func(t *testing.T, r *render.Result) {
			if got := len(r.Names("ServiceMonitor")); got != 5 {
				t.Errorf("%d ServiceMonitors, want 5", got)
			}
			eps, _, _ := unstructured.NestedSlice(r.Find("ServiceMonitor", ppm).Object, "spec", "endpoints")
			if len(eps) != 1 || eps[0].(map[string]any)["port"] != "http-settings" {
				t.Errorf("podsettings-poddefaults-manager ServiceMonitor endpoints %v", eps)
			}
			if r.Find("ClusterRole", full("poddefaults-watcher")) != nil {
				t.Error("RBAC of the disabled poddefaults-watcher rendered")
			}
			if r.Find("ClusterRoleBinding", full("userspace-chart-manager-cluster-admin")) == nil {
				t.Error("chartRBAC.clusterAdmin binds no cluster-admin")
			}
			if grants(rules(t, r, "ClusterRole", full("userspace-chart-manager")), "create", "apps", "deployments", "") {
				t.Error("chart rules rendered besides cluster-admin")
			}
		},
	}, {
		name:        "inventory, images, replicas, scheduling",
		values:      []string{allEnabled, inventoryValues},
		deployments: map[string][]string{full("userspace-chart-manager"): {"userspace-chart-manager"}, full("pod-modifier"): {"pod-modifier"}, full("image-updater"): {"image-updater"}, full("image-replicator"): {"image-replicator"}},
		webhooks:    allWebhooks,
		check: func(t *testing.T, r *render.Result) {
			d := deployment(t, r, full("image-replicator"))
			inv := container(t, d, "inventory")
			wantFlag(t, inv, "inventory", "/etc/orbit/inventory/images.txt")
			noFlag(t, inv, "leader-elect")
			images, _, _ := unstructured.NestedString(r.Find("ConfigMap", full("image-replicator-inventory")).Object, "data", "images.txt")
			if strings.Fields(images)[0] != "nginx:1.25" || len(strings.Fields(images)) != 2 {
				t.Errorf("inventory list %q", images)
			}
			if !grants(rules(t, r, "Role", full("image-replicator")), "get", "", "secrets", "ecr-pull") || grants(rules(t, r, "Role", full("image-replicator")), "get", "", "secrets", "other") {
				t.Error("image-replicator Secret access is not exactly dockerConfigSecrets")
			}
			pm := deployment(t, r, full("pod-modifier"))
			if c := container(t, pm, "pod-modifier"); c.Image != "mirror.example/orbit/pod-modifier:v9" {
				t.Errorf("pod-modifier image %q", c.Image)
			}
			if c := container(t, deployment(t, r, full("userspace-chart-manager")), "userspace-chart-manager"); c.Image != "mirror.example/orbit/userspace-chart-manager@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" {
				t.Errorf("userspace-chart-manager image %q", c.Image)
			}
			if *pm.Spec.Replicas != 3 || pm.Spec.Template.Spec.NodeSelector["pool"] != "system" || len(pm.Spec.Template.Spec.Tolerations) != 1 {
				t.Errorf("pod-modifier scheduling: replicas %d, nodeSelector %v, tolerations %v", *pm.Spec.Replicas, pm.Spec.Template.Spec.NodeSelector, pm.Spec.Template.Spec.Tolerations)
			}
			wantFlag(t, container(t, pm, "pod-modifier"), "log-verbosity", "3")
			wantFlag(t, container(t, pm, "pod-modifier"), "log-level", "debug")
			if r.Find("PodDisruptionBudget", full("pod-modifier")) != nil {
				t.Error("PodDisruptionBudget rendered although disabled")
			}
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := renderChart(t, tc.values...)
			checkWiring(t, r)
			got := map[string][]string{}
			for _, o := range r.All("Deployment") {
				got[o.GetName()] = containerNames(deployment(t, r, o.GetName()))
			}
			if !maps.EqualFunc(got, tc.deployments, slices.Equal) {
				t.Errorf("Deployments and containers %v, want %v", got, tc.deployments)
			}
			if mwcs := slices.Sorted(slices.Values(r.Names("MutatingWebhookConfiguration"))); !slices.Equal(mwcs, tc.webhooks) {
				t.Errorf("MutatingWebhookConfigurations %v, want %v", mwcs, tc.webhooks)
			}
			for _, name := range tc.webhooks {
				checkWebhookPolicy(t, r, name)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

const monitorsValues = `
userspace-chart-manager: {serviceMonitor: {enabled: true}, chartRBAC: {clusterAdmin: true}}
pod-modifier: {serviceMonitor: {enabled: true}}
podsettings-poddefaults-manager: {serviceMonitor: {enabled: true}, poddefaultsWatcher: {enabled: false}}
image-updater: {serviceMonitor: {enabled: true}}
image-replicator: {serviceMonitor: {enabled: true}}
`

const inventoryValues = `
global: {image: {registry: mirror.example}}
podsettings-poddefaults-manager:
  podsettingsWatcher: {enabled: false}
  poddefaultsWatcher: {enabled: false}
userspace-chart-manager:
  image: {repository: orbit/userspace-chart-manager, tag: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
pod-modifier:
  image: {repository: orbit/pod-modifier, tag: v9}
  replicas: 3
  logLevel: debug
  logVerbosity: 3
  nodeSelector: {pool: system}
  tolerations: [{key: dedicated, operator: Equal, value: system, effect: NoSchedule}]
  podDisruptionBudget: {enabled: false}
image-replicator:
  dockerConfigSecrets: [ecr-pull]
  inventory: {images: ["nginx:1.25", "quay.io/jetstack/cert-manager-controller:v1.3.2"]}
`

// checkWebhookPolicy holds each webhook to the original's registration: Pods on CREATE and
// UPDATE at its fixed path, and which namespaces it sees.
func checkWebhookPolicy(t *testing.T, r *render.Result, name string) {
	t.Helper()
	var m admissionv1.MutatingWebhookConfiguration
	if err := render.Into(r.Find("MutatingWebhookConfiguration", name), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Webhooks) != 1 {
		t.Fatalf("%s: %d webhooks", name, len(m.Webhooks))
	}
	w := m.Webhooks[0]
	if len(w.Rules) != 1 || !slices.Equal(w.Rules[0].Operations, []admissionv1.OperationType{admissionv1.Create, admissionv1.Update}) ||
		!slices.Equal(w.Rules[0].Resources, []string{"pods"}) || !slices.Equal(w.Rules[0].APIGroups, []string{""}) {
		t.Errorf("%s: rules %+v, want pods CREATE and UPDATE", name, w.Rules)
	}
	if *w.ReinvocationPolicy != admissionv1.IfNeededReinvocationPolicy || *w.TimeoutSeconds != 10 || *w.FailurePolicy != admissionv1.Fail ||
		!slices.Equal(w.AdmissionReviewVersions, []string{"v1"}) {
		t.Errorf("%s: policies reinvocation=%s timeout=%d failure=%s reviews=%v", name, *w.ReinvocationPolicy, *w.TimeoutSeconds, *w.FailurePolicy, w.AdmissionReviewVersions)
	}
	sel, err := metav1.LabelSelectorAsSelector(w.NamespaceSelector)
	if err != nil {
		t.Fatalf("%s: namespaceSelector: %v", name, err)
	}
	nsLabels := func(name string, kv ...string) labels.Set {
		l := labels.Set{corev1.LabelMetadataName: name}
		for i := 0; i+1 < len(kv); i += 2 {
			l[kv[i]] = kv[i+1]
		}
		return l
	}
	var path string
	var sideEffects admissionv1.SideEffectClass
	var want map[string]bool
	cases := map[string]labels.Set{
		"team":        nsLabels("team-a", "orbit/space", "team"),
		"user":        nsLabels("team-a-alice", "orbit/space", "user"),
		"kubeflow":    nsLabels("kubeflow", "orbit/space", "kubeflow"),
		"env":         nsLabels("orbit-env", "orbit/space", "env"),
		"unlabelled":  nsLabels("cert-manager"),
		"kube-system": nsLabels("kube-system"),
		"release":     nsLabels(ns),
	}
	switch name {
	case full("pod-modifier"):
		path, sideEffects = "/pod-pod-setting", admissionv1.SideEffectClassNone
		want = map[string]bool{"team": true, "user": true, "kubeflow": true}
	case full("image-updater"):
		path, sideEffects = "/pod-image-replication", admissionv1.SideEffectClassNoneOnDryRun
		want = map[string]bool{"team": true, "user": true, "kubeflow": true, "unlabelled": true}
	default:
		t.Fatalf("unknown webhook configuration %s", name)
	}
	if w.ClientConfig.Service.Path == nil || *w.ClientConfig.Service.Path != path {
		t.Errorf("%s: path %v, want %s", name, w.ClientConfig.Service.Path, path)
	}
	if *w.SideEffects != sideEffects {
		t.Errorf("%s: sideEffects %s, want %s", name, *w.SideEffects, sideEffects)
	}
	for c, l := range cases {
		if got := sel.Matches(l); got != want[c] {
			t.Errorf("%s: namespace %s (%v) selected=%v, want %v", name, c, l, got, want[c])
		}
	}
}

func TestRenderImageUpdaterOnlyLabelledNamespaces(t *testing.T) {
	r := renderChart(t, allEnabled, "image-updater: {webhook: {includeUnlabelledNamespaces: false, excludeNamespaces: []}}")
	var m admissionv1.MutatingWebhookConfiguration
	if err := render.Into(r.Find("MutatingWebhookConfiguration", full("image-updater")), &m); err != nil {
		t.Fatal(err)
	}
	sel, err := metav1.LabelSelectorAsSelector(m.Webhooks[0].NamespaceSelector)
	if err != nil {
		t.Fatal(err)
	}
	for l, want := range map[string]bool{"": false, "team": true, "env": false} {
		set := labels.Set{corev1.LabelMetadataName: "x"}
		if l != "" {
			set["orbit/space"] = l
		}
		if got := sel.Matches(set); got != want {
			t.Errorf("orbit/space=%q selected=%v, want %v", l, got, want)
		}
	}
	if !sel.Matches(labels.Set{corev1.LabelMetadataName: "kube-system", "orbit/space": "team"}) {
		t.Error("kube-system still excluded with excludeNamespaces empty")
	}
	if sel.Matches(labels.Set{corev1.LabelMetadataName: ns, "orbit/space": "team"}) {
		t.Error("the release namespace is not excluded")
	}
}

// TestRenderRejects: values the services would reject, or the chart cannot honour, fail at
// install time with a message naming the value.
func TestRenderRejects(t *testing.T) {
	cases := map[string]struct{ values, want string }{
		"image-updater without mirror":    {"image-updater: {enabled: true}", "global.imageReplication.repoHost is required"},
		"image-replicator without prefix": {"image-replicator: {enabled: true}\nglobal: {imageReplication: {repoHost: h.example}}", "repoPrefix is required"},
		"unknown certificate mode":        {"global: {certificates: {mode: vault}}", "mode"},
		"misspelt value":                  {"pod-modifier: {replica: 3}", "replica"},
		"verbosity out of range":          {"pod-modifier: {logVerbosity: 5}", "logVerbosity"},
		"unknown failure policy":          {"pod-modifier: {webhook: {failurePolicy: Sometimes}}", "failurePolicy"},
		"watchers on one port":            {"podsettings-poddefaults-manager: {poddefaultsWatcher: {httpPort: 8080}}", "both use httpPort 8080"},
		"unknown backend":                 {"global: {imageReplication: {backend: skopeo}}", "backend"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := render.Chart(repo.ChartDir(t), render.Release, ns, values(t, tc.values))
			if err == nil {
				t.Fatalf("rendered; want an error naming %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// TestRenderCoversEveryService: every service module has its container in the chart, run
// from its own image.
func TestRenderCoversEveryService(t *testing.T) {
	r := renderChart(t, allEnabled)
	images := map[string]string{}
	for _, o := range r.All("Deployment") {
		for _, c := range deployment(t, r, o.GetName()).Spec.Template.Spec.Containers {
			images[c.Name] = c.Image
		}
	}
	for _, svc := range repo.Services(t) {
		img, ok := images[svc]
		if !ok {
			t.Errorf("service %s has no container in the chart", svc)
			continue
		}
		if !strings.HasPrefix(img, "ghcr.io/orbit-workbench/orbit-controller/"+svc+":") {
			t.Errorf("service %s runs image %s", svc, img)
		}
	}
}
