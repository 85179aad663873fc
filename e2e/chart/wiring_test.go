package chart

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/orbit-workbench/orbit-controller/e2e/internal/render"
)

var clusterScoped = map[string]bool{
	"ClusterRole": true, "ClusterRoleBinding": true, "MutatingWebhookConfiguration": true,
}

// checkWiring holds every rendering to the invariants that make the objects work together:
// strict schemas, namespaces, Pod security, ports named where they are used, Services that
// select a Deployment, webhooks that reach a Service and trust the right certificate, and
// bindings to ServiceAccounts and roles that exist.
func checkWiring(t *testing.T, r *render.Result) {
	t.Helper()
	var (
		deps   []*appsv1.Deployment
		svcs   []*corev1.Service
		mwcs   []*admissionv1.MutatingWebhookConfiguration
		pdbs   []*policyv1.PodDisruptionBudget
		sas    = map[string]bool{}
		cms    = map[string]bool{}
		croles = map[string]bool{"cluster-admin": true}
		roles  = map[string]bool{}
	)
	for _, o := range r.Objects {
		if clusterScoped[o.GetKind()] {
			if o.GetNamespace() != "" {
				t.Errorf("%s %s: cluster-scoped with namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
			}
		} else if o.GetNamespace() != ns {
			t.Errorf("%s %s: namespace %q, want the release's %q", o.GetKind(), o.GetName(), o.GetNamespace(), ns)
		}
		if got := o.GetLabels()["app.kubernetes.io/instance"]; got != render.Release {
			t.Errorf("%s %s: label app.kubernetes.io/instance=%q", o.GetKind(), o.GetName(), got)
		}
		if !render.Known(o) {
			continue // cert-manager and Prometheus operator kinds: checked below by field
		}
		typed, err := render.Typed(o)
		if err != nil {
			t.Errorf("strict decode: %v", err)
			continue
		}
		switch x := typed.(type) {
		case *appsv1.Deployment:
			deps = append(deps, x)
		case *corev1.Service:
			svcs = append(svcs, x)
		case *admissionv1.MutatingWebhookConfiguration:
			mwcs = append(mwcs, x)
		case *policyv1.PodDisruptionBudget:
			pdbs = append(pdbs, x)
		case *corev1.ServiceAccount:
			sas[x.Name] = true
		case *corev1.ConfigMap:
			cms[x.Name] = true
		case *rbacv1.ClusterRole:
			croles[x.Name] = true
		case *rbacv1.Role:
			roles[x.Name] = true
		}
	}
	for _, d := range deps {
		checkDeployment(t, r, d, sas, cms)
	}
	for _, s := range svcs {
		checkService(t, s, deps)
	}
	for _, m := range mwcs {
		checkWebhooks(t, r, m, svcs, deps)
	}
	for _, p := range pdbs {
		sel := labels.SelectorFromSet(p.Spec.Selector.MatchLabels)
		if len(selected(sel, deps)) != 1 {
			t.Errorf("PodDisruptionBudget %s selects %d Deployments", p.Name, len(selected(sel, deps)))
		}
	}
	for _, o := range r.Objects {
		switch o.GetKind() {
		case "ClusterRoleBinding", "RoleBinding":
			var b rbacv1.RoleBinding // same shape as ClusterRoleBinding for these fields
			if err := render.Into(o, &b); err != nil {
				t.Error(err)
				continue
			}
			known := roles
			if b.RoleRef.Kind == "ClusterRole" {
				known = croles
			}
			if !known[b.RoleRef.Name] {
				t.Errorf("%s %s: roleRef %s %s is not rendered", o.GetKind(), b.Name, b.RoleRef.Kind, b.RoleRef.Name)
			}
			for _, s := range b.Subjects {
				if s.Kind != "ServiceAccount" || s.Namespace != ns || !sas[s.Name] {
					t.Errorf("%s %s: subject %+v is not a ServiceAccount of the release", o.GetKind(), b.Name, s)
				}
			}
		}
	}
	checkTestHook(t, r, svcs)
}

func selected(sel labels.Selector, deps []*appsv1.Deployment) []*appsv1.Deployment {
	var out []*appsv1.Deployment
	for _, d := range deps {
		if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			out = append(out, d)
		}
	}
	return out
}

func checkDeployment(t *testing.T, r *render.Result, d *appsv1.Deployment, sas, cms map[string]bool) {
	t.Helper()
	spec := d.Spec.Template.Spec
	if !sas[spec.ServiceAccountName] {
		t.Errorf("Deployment %s: ServiceAccount %q is not rendered", d.Name, spec.ServiceAccountName)
	}
	if sel := labels.SelectorFromSet(d.Spec.Selector.MatchLabels); !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("Deployment %s: selector does not match its Pod template", d.Name)
	}
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("Deployment %s: Pod securityContext %+v, want runAsNonRoot and seccomp RuntimeDefault", d.Name, psc)
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		if v.Secret != nil && !strings.HasSuffix(v.Secret.SecretName, "-tls") {
			t.Errorf("Deployment %s: unexpected Secret volume %s", d.Name, v.Secret.SecretName)
		}
		if v.ConfigMap != nil && !cms[v.ConfigMap.Name] {
			t.Errorf("Deployment %s: ConfigMap volume %s is not rendered", d.Name, v.ConfigMap.Name)
		}
		volumes[v.Name] = true
	}
	watcher := d.Labels["app.kubernetes.io/component"] == "watcher"
	ports := map[int32]string{}
	check := func(c corev1.Container, init bool) {
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("Deployment %s container %s: securityContext %+v is not locked down", d.Name, c.Name, sc)
		}
		if !strings.Contains(c.Image, ":") && !strings.Contains(c.Image, "@") {
			t.Errorf("container %s: image %q has no tag", c.Name, c.Image)
		}
		if len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != "orbit-controller-config" || !cms["orbit-controller-config"] {
			t.Errorf("container %s: envFrom %+v, want the rendered orbit-controller-config", c.Name, c.EnvFrom)
		}
		if v, _ := flag(c.Args, "namespace"); v != ns {
			t.Errorf("container %s: --namespace=%q, want %q", c.Name, v, ns)
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				t.Errorf("container %s: mount of missing volume %s", c.Name, m.Name)
			}
		}
		if init {
			return
		}
		if _, ok := flag(c.Args, "leader-elect"); ok != watcher {
			t.Errorf("container %s: --leader-elect present=%v, want %v (watcher)", c.Name, ok, watcher)
		}
		addr, _ := flag(c.Args, "http-address")
		named := map[string]int32{}
		for _, p := range c.Ports {
			named[p.Name] = p.ContainerPort
			if other, dup := ports[p.ContainerPort]; dup {
				t.Errorf("Deployment %s: port %d of %s already used by %s", d.Name, p.ContainerPort, c.Name, other)
			}
			ports[p.ContainerPort] = c.Name
		}
		if c.LivenessProbe == nil || c.ReadinessProbe == nil {
			t.Errorf("container %s: probes missing", c.Name)
			return
		}
		for path, probe := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
			g := probe.HTTPGet
			if g == nil || g.Path != path {
				t.Errorf("container %s: probe %+v, want GET %s", c.Name, probe, path)
				continue
			}
			port, ok := named[g.Port.StrVal]
			if g.Port.Type != intstr.String || !ok {
				t.Errorf("container %s: probe port %s is not a named port of the container", c.Name, g.Port.String())
			} else if addr != fmt.Sprintf(":%d", port) {
				t.Errorf("container %s: probe on port %d but --http-address=%s", c.Name, port, addr)
			}
		}
	}
	for _, c := range spec.InitContainers {
		check(c, true)
	}
	for _, c := range spec.Containers {
		check(c, false)
	}
}

func checkService(t *testing.T, s *corev1.Service, deps []*appsv1.Deployment) {
	t.Helper()
	matched := selected(labels.SelectorFromSet(s.Spec.Selector), deps)
	if len(matched) != 1 {
		t.Errorf("Service %s selects %d Deployments", s.Name, len(matched))
		return
	}
	named := map[string]bool{}
	for _, c := range matched[0].Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			named[p.Name] = true
		}
	}
	for _, p := range s.Spec.Ports {
		if p.TargetPort.Type != intstr.String || !named[p.TargetPort.StrVal] {
			t.Errorf("Service %s port %s: targetPort %s is not a named port of Deployment %s", s.Name, p.Name, p.TargetPort.String(), matched[0].Name)
		}
	}
}

func checkWebhooks(t *testing.T, r *render.Result, m *admissionv1.MutatingWebhookConfiguration, svcs []*corev1.Service, deps []*appsv1.Deployment) {
	t.Helper()
	for _, w := range m.Webhooks {
		ref := w.ClientConfig.Service
		if ref == nil || ref.Namespace != ns || ref.Port == nil || *ref.Port != 443 {
			t.Errorf("webhook %s: clientConfig %+v, want a Service of the release on 443", w.Name, w.ClientConfig)
			continue
		}
		if len(w.ClientConfig.CABundle) != 0 {
			t.Errorf("webhook %s: caBundle rendered; the service or cainjector owns it", w.Name)
		}
		var svc *corev1.Service
		for _, s := range svcs {
			if s.Name == ref.Name {
				svc = s
			}
		}
		if svc == nil {
			t.Errorf("webhook %s: Service %s is not rendered", w.Name, ref.Name)
			continue
		}
		var tls bool
		for _, p := range svc.Spec.Ports {
			tls = tls || (p.Port == 443 && p.TargetPort.StrVal == "webhook")
		}
		if !tls {
			t.Errorf("Service %s: no port 443 to the webhook port", svc.Name)
		}
		matched := selected(labels.SelectorFromSet(svc.Spec.Selector), deps)
		if len(matched) != 1 {
			continue // reported by checkService
		}
		d := matched[0]
		c := d.Spec.Template.Spec.Containers[0]
		mode, _ := flag(c.Args, "cert-mode")
		cm := m.Annotations["cert-manager.io/inject-ca-from"]
		switch mode {
		case "self-signed", "csr":
			wantFlag(t, c, "service-name", svc.Name)
			wantFlag(t, c, "webhook-config", m.Name)
			wantFlag(t, c, "cert-secret", svc.Name+"-tls")
			if cm != "" {
				t.Errorf("MutatingWebhookConfiguration %s: inject-ca-from in %s mode", m.Name, mode)
			}
		case "files":
			cert := r.Find("Certificate", svc.Name)
			if cm != ns+"/"+svc.Name || cert == nil {
				t.Errorf("MutatingWebhookConfiguration %s: inject-ca-from %q, want the rendered Certificate %s/%s", m.Name, cm, ns, svc.Name)
				continue
			}
			secret, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
			dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
			if !slices.Contains(dns, svc.Name+"."+ns+".svc") {
				t.Errorf("Certificate %s: dnsNames %v lack %s.%s.svc", cert.GetName(), dns, svc.Name, ns)
			}
			certFile, _ := flag(c.Args, "tls-cert-file")
			keyFile, _ := flag(c.Args, "tls-key-file")
			var mounted bool
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.Secret == nil || v.Secret.SecretName != secret {
					continue
				}
				for _, vm := range c.VolumeMounts {
					if vm.Name == v.Name && strings.HasPrefix(certFile, vm.MountPath+"/") && strings.HasPrefix(keyFile, vm.MountPath+"/") {
						mounted = true
					}
				}
			}
			if !mounted {
				t.Errorf("Deployment %s: --tls-cert-file=%s --tls-key-file=%s are not in the mounted Secret %s", d.Name, certFile, keyFile, secret)
			}
		default:
			t.Errorf("Deployment %s: --cert-mode=%q", d.Name, mode)
		}
	}
}

// checkTestHook: the `helm test` Pod asks every enabled service's Service for /readyz.
func checkTestHook(t *testing.T, r *render.Result, svcs []*corev1.Service) {
	t.Helper()
	var pod *corev1.Pod
	for _, h := range r.Hooks {
		if h.GetKind() == "Pod" && h.GetAnnotations()["helm.sh/hook"] == "test" {
			pod = &corev1.Pod{}
			if err := render.Into(h, pod); err != nil {
				t.Fatal(err)
			}
		}
	}
	if pod == nil {
		t.Error("no helm test Pod")
		return
	}
	script := strings.Join(pod.Spec.Containers[0].Args, "\n")
	for _, s := range svcs {
		for _, p := range s.Spec.Ports {
			if p.Name == "https" {
				continue
			}
			url := fmt.Sprintf("http://%s.%s.svc:%d/readyz", s.Name, ns, p.Port)
			if !strings.Contains(script, url) {
				t.Errorf("helm test Pod does not check %s", url)
			}
		}
	}
}
