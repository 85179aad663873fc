package certs_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/orbit-workbench/orbit-controller/pkg/certs"
	"github.com/orbit-workbench/orbit-controller/pkg/testenv"
	"github.com/orbit-workbench/orbit-controller/pkg/webhook"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	if os.Getenv("ORBIT_NO_CONTROL_PLANE") != "" { // fuzzing runs only the unit targets
		os.Exit(m.Run())
	}
	testenv.Main(m, testenv.Options{}, &env)
}

func needEnv(t *testing.T) {
	t.Helper()
	if env == nil {
		t.Skip("ORBIT_NO_CONTROL_PLANE is set: no control plane")
	}
}

// logs is a logger whose output the test can search; it also goes to t.Log on failure.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logs) has(s string) bool { return strings.Contains(l.String(), s) }

// logCtx is t.Context() carrying a logger into l; the logs are printed when the test fails.
func logCtx(t *testing.T, name string) (context.Context, *logs) {
	l := &logs{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of %s:\n%s", name, l)
		}
	})
	log := zerolog.New(l).With().Timestamp().Str("manager", name).Logger()
	return log.WithContext(t.Context()), l
}

func options(ns, cfg string) certs.Options {
	o := certs.DefaultOptions()
	o.Secret, o.ServiceName, o.WebhookConfig = "wh-cert", "orbit-wh", cfg
	// The API server calls the test webhook by URL on the loopback address.
	o.ExtraHosts = []string{"127.0.0.1", "localhost"}
	o.CheckInterval = 5 * time.Second
	return o
}

// labelHandler marks every Pod it sees, so a test can tell the webhook was called.
func labelHandler(_ context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return webhook.Allowed("not a pod: " + err.Error()), nil
	}
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels["orbit-certs/webhook"] = "called"
	return webhook.PatchResponse(req.Object.Raw, &pod, nil)
}

// serveWebhook serves the label webhook over TLS with src on a loopback port until the test
// ends and returns the address.
func serveWebhook(t *testing.T, src webhook.CertSource) string {
	t.Helper()
	r := webhook.NewRouter(zerolog.Nop(), webhook.NewMetrics(prometheus.NewRegistry(), "test"))
	r.Admit("/mutate", labelHandler)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- webhook.Serve(ctx, ln, r, src, 5*time.Second) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// createWebhookConfig registers two webhooks (both must get the CA bundle) for Pods of ns,
// with the given caBundle, deleted when the test ends. The first calls addrs[0], the second
// the last of addrs (another replica, when given).
func createWebhookConfig(t *testing.T, name, ns string, caBundle []byte, addrs ...string) {
	t.Helper()
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	timeout := int32(5)
	hook := func(name, addr string) admissionregistrationv1.MutatingWebhook {
		url := "https://" + addr + "/mutate"
		return admissionregistrationv1.MutatingWebhook{
			Name:                    name,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caBundle},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          &timeout,
		}
	}
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks:   []admissionregistrationv1.MutatingWebhook{hook("a.certs.orbit.aws", addrs[0]), hook("b.certs.orbit.aws", addrs[len(addrs)-1])},
	}
	whs := env.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := whs.Create(t.Context(), cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = whs.Delete(context.Background(), name, metav1.DeleteOptions{}) })
}

func createPod(ctx context.Context, ns, name string) error {
	pod, err := env.Clientset.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "x"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	if pod.Labels["orbit-certs/webhook"] != "called" {
		return fmt.Errorf("pod %s created without the webhook", name)
	}
	return nil
}

// podGoesThrough: a Pod create in ns is mutated by the webhook, through the API server's TLS
// client, within timeout.
func podGoesThrough(t *testing.T, ns string, timeout time.Duration) {
	t.Helper()
	i := 0
	var last error
	testenv.Eventually(t, timeout, func(ctx context.Context) (bool, string) {
		i++
		last = createPod(ctx, ns, fmt.Sprintf("through-%d", i))
		return last == nil, fmt.Sprintf("pod create: %v", last)
	})
}

// webhookBundles are the caBundles of every webhook of the configuration.
func webhookBundles(ctx context.Context, name string) ([][]byte, error) {
	cfg, err := env.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, wh := range cfg.Webhooks {
		out = append(out, wh.ClientConfig.CABundle)
	}
	return out, nil
}

// dialWith connects to addr trusting bundle, as the API server does, and returns the served leaf.
func dialWith(addr string, bundle []byte) (*x509.Certificate, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return nil, errors.New("CA bundle holds no certificate")
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

// checkSecretAndBundle: the serving Secret is a sound kubernetes.io/tls Secret, every webhook
// of the configuration carries its ca.crt, and that bundle verifies what addr serves — a
// certificate also valid for the Service's DNS name.
func checkSecretAndBundle(t *testing.T, ns, cfgName, addr string, o certs.Options) *corev1.Secret {
	t.Helper()
	sec, err := env.Clientset.CoreV1().Secrets(ns).Get(t.Context(), o.Secret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Type != corev1.SecretTypeTLS {
		t.Fatalf("Secret type %s", sec.Type)
	}
	for _, k := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if len(sec.Data[k]) == 0 {
			t.Fatalf("Secret lacks %s", k)
		}
	}
	testenv.Eventually(t, 10*time.Second, func(ctx context.Context) (bool, string) {
		bundles, err := webhookBundles(ctx, cfgName)
		if err != nil {
			return false, err.Error()
		}
		for i, b := range bundles {
			if !bytes.Equal(b, sec.Data["ca.crt"]) {
				return false, fmt.Sprintf("webhook %d has a caBundle of %d bytes, not the Secret's ca.crt", i, len(b))
			}
		}
		return true, ""
	})
	leaf, err := dialWith(addr, sec.Data["ca.crt"])
	if err != nil {
		t.Fatalf("the injected CA bundle does not verify the served certificate: %v", err)
	}
	stored, err := certs.ParseCertificate(sec.Data["tls.crt"])
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.Equal(stored) {
		t.Fatal("the served certificate is not the Secret's")
	}
	if err := leaf.VerifyHostname(o.ServiceName + "." + ns + ".svc"); err != nil {
		t.Fatal(err)
	}
	return sec
}

// runManager runs m until the test ends.
func runManager(t *testing.T, ctx context.Context, m *certs.Manager) {
	ctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func newManager(t *testing.T, client kubernetes.Interface, ns string, o certs.Options) *certs.Manager {
	t.Helper()
	m, err := certs.NewManager(client, ns, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Self-signed mode end to end: Secrets, injection into every webhook, the API server calling
// the webhook over the managed TLS, and re-injection after someone resets the caBundle.
func TestSelfSignedServesThroughAPIServer(t *testing.T) {
	needEnv(t)
	t.Parallel()
	ns := env.Namespace(t, "self", nil).Name
	cfgName := "certs-" + ns
	ctx, _ := logCtx(t, "self-signed")
	o := options(ns, cfgName)
	m := newManager(t, env.Clientset, ns, o)
	addr := serveWebhook(t, m)
	createWebhookConfig(t, cfgName, ns, nil, addr)
	runManager(t, ctx, m)

	podGoesThrough(t, ns, 30*time.Second)
	sec := checkSecretAndBundle(t, ns, cfgName, addr, o)
	caSec, err := env.Clientset.CoreV1().Secrets(ns).Get(ctx, m.CASecretName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if caSec.Type != corev1.SecretTypeTLS || len(caSec.Data["tls.key"]) == 0 || !bytes.Equal(caSec.Data["ca.crt"], sec.Data["ca.crt"]) {
		t.Fatalf("CA Secret %s: type %s, key %d bytes, bundle equal to the serving Secret's: %v",
			caSec.Name, caSec.Type, len(caSec.Data["tls.key"]), bytes.Equal(caSec.Data["ca.crt"], sec.Data["ca.crt"]))
	}

	// Something (a helm upgrade, say) resets the caBundle: it comes back, and Pods go through.
	other, err := certs.NewCA("someone else", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	patch := fmt.Sprintf(`{"webhooks":[{"name":"a.certs.orbit.aws","clientConfig":{"caBundle":%q}},{"name":"b.certs.orbit.aws","clientConfig":{"caBundle":null}}]}`,
		base64(other.CertPEM))
	if _, err := env.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Patch(ctx, cfgName, "application/strategic-merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	checkSecretAndBundle(t, ns, cfgName, addr, o)
	podGoesThrough(t, ns, 30*time.Second)
}

func base64(b []byte) string {
	s, _ := json.Marshal(b)
	return strings.Trim(string(s), `"`)
}

// testCA is a CA a test signs CSRs with.
type testCA struct {
	pair   certs.KeyPair
	cert   *x509.Certificate
	signer crypto.Signer
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	pair, err := certs.NewCA("orbit test signer", 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tc, err := pair.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pair.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	return testCA{pair: pair, cert: cert, signer: tc.PrivateKey.(crypto.Signer)}
}

// sign issues what the request asks for, as a cluster signer would.
func (ca testCA) sign(csr *certificatesv1.CertificateSigningRequest, withChain bool) ([]byte, error) {
	block, _ := pem.Decode(csr.Spec.Request)
	if block == nil {
		return nil, errors.New("request is not PEM")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, err
	}
	if err := req.CheckSignature(); err != nil {
		return nil, err
	}
	lifetime := time.Hour
	if csr.Spec.ExpirationSeconds != nil {
		lifetime = time.Duration(*csr.Spec.ExpirationSeconds) * time.Second
	}
	sn, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: req.Subject, DNSNames: req.DNSNames, IPAddresses: req.IPAddresses,
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(lifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, req.PublicKey, ca.signer)
	if err != nil {
		return nil, err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if withChain {
		out = append(out, ca.pair.CertPEM...)
	}
	return out, nil
}

// csrRole is what a test controller does with the CSRs of one signer: approve or deny those
// without a decision, sign the approved ones.
type csrRole struct {
	approve, deny bool
	sign          *testCA
	withChain     bool
}

// runCSRController plays the cluster's approver and signer for signerName until the test
// ends: a small controller writing through the real API server (approval, then
// status.certificate through UpdateStatus).
func runCSRController(t *testing.T, signerName string, role csrRole) {
	ctx, stop := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan struct{})
	t.Cleanup(func() { stop(); <-done })
	csrs := env.Clientset.CertificatesV1().CertificateSigningRequests()
	sel := fields.OneTermEqualSelector("spec.signerName", signerName).String()
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			list, err := csrs.List(ctx, metav1.ListOptions{FieldSelector: sel})
			if err == nil {
				for i := range list.Items {
					handleCSR(ctx, t, &list.Items[i], role)
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
}

func handleCSR(ctx context.Context, t *testing.T, csr *certificatesv1.CertificateSigningRequest, role csrRole) {
	csrs := env.Clientset.CertificatesV1().CertificateSigningRequests()
	approved, denied := false, false
	for _, c := range csr.Status.Conditions {
		approved = approved || c.Type == certificatesv1.CertificateApproved
		denied = denied || c.Type == certificatesv1.CertificateDenied
	}
	if !approved && !denied && (role.approve || role.deny) {
		cond := certificatesv1.CertificateSigningRequestCondition{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "TestApprover", Message: "approved by the test"}
		if role.deny {
			cond = certificatesv1.CertificateSigningRequestCondition{Type: certificatesv1.CertificateDenied, Status: corev1.ConditionTrue, Reason: "TestPolicy", Message: "webhooks may not have certificates today"}
		}
		csr.Status.Conditions = append(csr.Status.Conditions, cond)
		if _, err := csrs.UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil && !apierrors.IsConflict(err) {
			t.Errorf("test approver: %v", err)
		}
		return
	}
	if approved && len(csr.Status.Certificate) == 0 && role.sign != nil {
		cert, err := role.sign.sign(csr, role.withChain)
		if err != nil {
			t.Errorf("test signer: %v", err)
			return
		}
		csr.Status.Certificate = cert
		if _, err := csrs.UpdateStatus(ctx, csr, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil && !apierrors.IsConflict(err) {
			t.Errorf("test signer: %v", err)
		}
	}
}

// restrictedClient is a client for a webhook's own service account that may create CSRs but
// not approve them.
func restrictedClient(t *testing.T, ns string) kubernetes.Interface {
	t.Helper()
	ctx := t.Context()
	user := "system:serviceaccount:" + ns + ":orbit-webhook"
	rbac := env.Clientset.RbacV1()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "orbit-webhook"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch", "create", "update", "delete"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}},
		},
	}
	if _, err := rbac.Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
	if _, err := rbac.RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "orbit-webhook"}, Subjects: subject,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cr := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "orbit-webhook-" + ns},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests"}, Verbs: []string{"create", "get", "list", "watch", "delete"}},
			{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations"}, Verbs: []string{"get", "list", "watch", "patch"}},
		},
	}
	if _, err := rbac.ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: cr.Name}, Subjects: subject,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = rbac.ClusterRoleBindings().Delete(context.Background(), cr.Name, metav1.DeleteOptions{})
		_ = rbac.ClusterRoles().Delete(context.Background(), cr.Name, metav1.DeleteOptions{})
	})
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// csr mode end to end, for each place the CA bundle can come from. The Manager approves its
// own CSR (its client may), a test signer signs it.
func TestCSRServesThroughAPIServer(t *testing.T) {
	needEnv(t)
	t.Parallel()
	for _, source := range []string{"ca-bundle-file", "kube-root-ca.crt", "signer chain"} {
		t.Run(source, func(t *testing.T) {
			t.Parallel()
			ns := env.Namespace(t, "csr", nil).Name
			cfgName := "certs-" + ns
			signerName := "orbit.test/" + ns
			ctx, _ := logCtx(t, "csr")
			ca := newTestCA(t)
			o := options(ns, cfgName)
			o.Mode, o.SignerName = certs.ModeCSR, signerName
			switch source {
			case "ca-bundle-file":
				o.CABundleFile = t.TempDir() + "/ca.pem"
				if err := os.WriteFile(o.CABundleFile, ca.pair.CertPEM, 0o600); err != nil {
					t.Fatal(err)
				}
			case "kube-root-ca.crt":
				if _, err := env.Clientset.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: certs.RootCAConfigMap}, Data: map[string]string{"ca.crt": string(ca.pair.CertPEM)},
				}, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			runCSRController(t, signerName, csrRole{sign: &ca, withChain: source == "signer chain"})
			m := newManager(t, env.Clientset, ns, o)
			addr := serveWebhook(t, m)
			createWebhookConfig(t, cfgName, ns, nil, addr)
			runManager(t, ctx, m)

			podGoesThrough(t, ns, 60*time.Second)
			sec := checkSecretAndBundle(t, ns, cfgName, addr, o)
			leaf, err := certs.ParseCertificate(sec.Data["tls.crt"])
			if err != nil {
				t.Fatal(err)
			}
			if err := leaf.CheckSignatureFrom(ca.cert); err != nil {
				t.Fatalf("stored certificate is not the signer's: %v", err)
			}
			if !bytes.Contains(sec.Data["ca.crt"], bytes.TrimSpace(ca.pair.CertPEM)) {
				t.Fatal("ca.crt lacks the signer's CA")
			}
			// The signed request is cleaned up: it carried nothing secret, but nothing needs it.
			testenv.Eventually(t, 10*time.Second, func(ctx context.Context) (bool, string) {
				list, err := env.Clientset.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{FieldSelector: "spec.signerName=" + signerName})
				if err != nil {
					return false, err.Error()
				}
				return len(list.Items) == 0, fmt.Sprintf("%d CSRs left", len(list.Items))
			})
			if _, err := env.Clientset.CoreV1().Secrets(ns).Get(ctx, o.Secret+"-ca", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Fatalf("csr mode made a CA Secret: %v", err)
			}
		})
	}
}

// A webhook that may not approve its CSR waits for someone who may, and the whole life cycle
// goes through the API server's approval checks.
func TestCSRApprovedBySomeoneElse(t *testing.T) {
	needEnv(t)
	t.Parallel()
	ns := env.Namespace(t, "csr-other", nil).Name
	signerName := "orbit.test/" + ns
	ctx, logs := logCtx(t, "csr")
	ca := newTestCA(t)
	o := options(ns, "")
	o.Mode, o.SignerName = certs.ModeCSR, signerName
	o.CABundleFile = t.TempDir() + "/ca.pem"
	if err := os.WriteFile(o.CABundleFile, ca.pair.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	runCSRController(t, signerName, csrRole{approve: true, sign: &ca})
	m := newManager(t, restrictedClient(t, ns), ns, o)
	if err := m.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if !logs.has("not allowed to approve the certificate signing request; waiting for an approver") {
		t.Fatal("the Manager did not try (and fail) to approve its own request")
	}
	if err := m.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := m.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Leaf.CheckSignatureFrom(ca.cert); err != nil {
		t.Fatalf("served certificate not from the signer: %v", err)
	}
}

func TestCSRDenied(t *testing.T) {
	needEnv(t)
	t.Parallel()
	ns := env.Namespace(t, "csr-denied", nil).Name
	signerName := "orbit.test/" + ns
	ctx, _ := logCtx(t, "csr")
	o := options(ns, "")
	o.Mode, o.SignerName = certs.ModeCSR, signerName
	runCSRController(t, signerName, csrRole{deny: true})
	m := newManager(t, restrictedClient(t, ns), ns, o)
	err := m.Setup(ctx)
	if !errors.Is(err, certs.ErrCSRDenied) {
		t.Fatalf("Setup: %v, want ErrCSRDenied", err)
	}
	for _, want := range []string{"TestPolicy", "webhooks may not have certificates today", signerName} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, err := env.Clientset.CoreV1().Secrets(ns).Get(ctx, o.Secret, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a Secret was stored for a denied request: %v", err)
	}
	if m.Ready(ctx) == nil {
		t.Fatal("ready without a certificate")
	}
}

func TestCSRNotSignedInTime(t *testing.T) {
	needEnv(t)
	t.Parallel()
	ns := env.Namespace(t, "csr-unsigned", nil).Name
	signerName := "orbit.test/" + ns // nobody signs for it
	ctx, _ := logCtx(t, "csr")
	o := options(ns, "")
	o.Mode, o.SignerName, o.CSRTimeout = certs.ModeCSR, signerName, 2*time.Second
	m := newManager(t, env.Clientset, ns, o)
	err := m.Setup(ctx)
	if !errors.Is(err, certs.ErrCSRTimeout) {
		t.Fatalf("Setup: %v, want ErrCSRTimeout", err)
	}
	for _, want := range []string{"was approved but not signed within 2s", signerName} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// The abandoned request is withdrawn, so a late signer cannot sign a key nobody keeps.
	list, err := env.Clientset.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{FieldSelector: "spec.signerName=" + signerName})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Fatalf("%d abandoned CSRs left", len(list.Items))
	}
}

// files mode: the pair cert-manager mounts is served and re-read when it changes; the API
// server calls through it with the bundle cainjector would have set.
func TestFilesServesAndReloads(t *testing.T) {
	needEnv(t)
	t.Parallel()
	ns := env.Namespace(t, "files", nil).Name
	ctx, _ := logCtx(t, "files")
	ca, err := certs.NewCA("cert-manager", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func() *x509.Certificate {
		kp, err := certs.IssueServing(ca, []string{"127.0.0.1"}, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		// Key first: a reader never pairs the new certificate with the old key for long.
		if err := os.WriteFile(dir+"/tls.key", kp.KeyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir+"/tls.crt", kp.CertPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := kp.Certificate()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := write()
	o := certs.DefaultOptions()
	o.Mode, o.CertFile, o.KeyFile, o.ReloadInterval = certs.ModeFiles, dir+"/tls.crt", dir+"/tls.key", 100*time.Millisecond
	src, err := certs.NewSource(nil, ns, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- src.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	addr := serveWebhook(t, src)
	createWebhookConfig(t, "certs-"+ns, ns, ca.CertPEM, addr)
	podGoesThrough(t, ns, 30*time.Second)
	if leaf, err := dialWith(addr, ca.CertPEM); err != nil || !leaf.Equal(first) {
		t.Fatalf("served %v, %v; want the first pair", leaf, err)
	}

	second := write()
	testenv.Eventually(t, 10*time.Second, func(context.Context) (bool, string) {
		leaf, err := dialWith(addr, ca.CertPEM)
		return err == nil && leaf.Equal(second), fmt.Sprintf("not reloaded: %v", err)
	})
	if err := createPod(ctx, ns, "after-reload"); err != nil {
		t.Fatal(err)
	}
}

// Two replicas starting at the same moment end up serving the one certificate stored.
func TestTwoManagersAgree(t *testing.T) {
	needEnv(t)
	t.Parallel()
	ns := env.Namespace(t, "two", nil).Name
	cfgName := "certs-" + ns
	o := options(ns, cfgName)
	m1, m2 := newManager(t, env.Clientset, ns, o), newManager(t, env.Clientset, ns, o)
	addr1, addr2 := serveWebhook(t, m1), serveWebhook(t, m2)
	createWebhookConfig(t, cfgName, ns, nil, addr1, addr2)
	ctx1, _ := logCtx(t, "replica-1")
	ctx2, _ := logCtx(t, "replica-2")
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range []struct {
		ctx context.Context
		m   *certs.Manager
	}{{ctx1, m1}, {ctx2, m2}} {
		wg.Go(func() {
			<-start
			runManager(t, r.ctx, r.m)
		})
	}
	close(start)
	wg.Wait()

	sameEverywhere := func() {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, string) {
			sec, err := env.Clientset.CoreV1().Secrets(ns).Get(ctx, o.Secret, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			for i, addr := range []string{addr1, addr2} {
				leaf, err := dialWith(addr, sec.Data["ca.crt"])
				if err != nil {
					return false, fmt.Sprintf("replica %d: %v", i+1, err)
				}
				stored, err := certs.ParseCertificate(sec.Data["tls.crt"])
				if err != nil || !leaf.Equal(stored) {
					return false, fmt.Sprintf("replica %d serves serial %x, the Secret holds another", i+1, leaf.SerialNumber)
				}
			}
			return true, ""
		})
	}
	sameEverywhere()
	checkSecretAndBundle(t, ns, cfgName, addr1, o)
	podGoesThrough(t, ns, 30*time.Second)

	// A Secret deleted under both is re-created once, and both follow.
	before, err := env.Clientset.CoreV1().Secrets(ns).Get(t.Context(), o.Secret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Clientset.CoreV1().Secrets(ns).Delete(t.Context(), o.Secret, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, string) {
		sec, err := env.Clientset.CoreV1().Secrets(ns).Get(ctx, o.Secret, metav1.GetOptions{})
		return err == nil && sec.UID != before.UID, "Secret not re-created"
	})
	sameEverywhere()
}

// Garbage in the Secrets is replaced and logged, never crashed on — whatever the type.
func TestGarbageSecretsReplaced(t *testing.T) {
	needEnv(t)
	t.Parallel()
	immutable := true
	cases := []struct {
		name    string
		secrets []*corev1.Secret
		wantLog []string
	}{
		{"garbage kubernetes.io/tls", []*corev1.Secret{{
			ObjectMeta: metav1.ObjectMeta{Name: "wh-cert"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": []byte("garbage"), "tls.key": []byte("garbage")},
		}}, []string{"serving certificate Secret is invalid; replacing it"}},
		{"Opaque with the right keys", []*corev1.Secret{{
			ObjectMeta: metav1.ObjectMeta{Name: "wh-cert"}, Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{"tls.crt": []byte("x"), "tls.key": []byte("y"), "ca.crt": []byte("z")},
		}}, []string{`type is \"Opaque\"`}},
		{"immutable garbage", []*corev1.Secret{{
			ObjectMeta: metav1.ObjectMeta{Name: "wh-cert"}, Type: corev1.SecretTypeTLS, Immutable: &immutable,
			Data: map[string][]byte{"tls.crt": []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "tls.key": []byte("k")},
		}}, []string{"serving certificate Secret is invalid; replacing it"}},
		{"garbage CA", []*corev1.Secret{{
			ObjectMeta: metav1.ObjectMeta{Name: "wh-cert-ca"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": []byte("nope"), "tls.key": []byte("nope")},
		}}, []string{"CA Secret is invalid; replacing it with a new CA"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := env.Namespace(t, "garbage", nil).Name
			ctx, logs := logCtx(t, "garbage")
			for _, s := range tc.secrets {
				if _, err := env.Clientset.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			o := options(ns, "")
			m := newManager(t, env.Clientset, ns, o)
			if err := m.Setup(ctx); err != nil {
				t.Fatalf("Setup over garbage: %v", err)
			}
			for _, want := range tc.wantLog {
				if !logs.has(want) {
					t.Errorf("logs do not say %s", want)
				}
			}
			sec, err := env.Clientset.CoreV1().Secrets(ns).Get(ctx, o.Secret, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if sec.Type != corev1.SecretTypeTLS {
				t.Fatalf("type %s", sec.Type)
			}
			pair := certs.KeyPair{CertPEM: sec.Data["tls.crt"], KeyPEM: sec.Data["tls.key"]}
			if _, err := pair.TLSCertificate(); err != nil {
				t.Fatalf("replaced Secret is not a pair: %v", err)
			}
			c, err := m.GetCertificate(nil)
			if err != nil || !bytes.Equal(c.Certificate[0], mustDER(t, sec.Data["tls.crt"])) {
				t.Fatalf("served certificate is not the replaced Secret's: %v", err)
			}
		})
	}
}

func mustDER(t *testing.T, certPEM []byte) []byte {
	t.Helper()
	c, err := certs.ParseCertificate(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c.Raw
}

// A missing webhook configuration is retried and logged; once it appears it gets the bundle.
// Setup gives up with a clear error when its context ends.
func TestWebhookConfigMissing(t *testing.T) {
	needEnv(t)
	t.Parallel()
	t.Run("Run waits for it", func(t *testing.T) {
		t.Parallel()
		ns := env.Namespace(t, "nocfg", nil).Name
		cfgName := "certs-" + ns
		ctx, logs := logCtx(t, "run")
		o := options(ns, cfgName)
		m := newManager(t, env.Clientset, ns, o)
		addr := serveWebhook(t, m)
		runManager(t, ctx, m)
		testenv.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, string) {
			return logs.has("CA bundle not injected; retrying") && logs.has("MutatingWebhookConfiguration "+cfgName) && m.Ready(ctx) == nil,
				"no retry logged, or no certificate served meanwhile"
		})
		createWebhookConfig(t, cfgName, ns, nil, addr)
		podGoesThrough(t, ns, 30*time.Second)
		checkSecretAndBundle(t, ns, cfgName, addr, o)
	})
	t.Run("Setup gives up when its context ends", func(t *testing.T) {
		t.Parallel()
		ns := env.Namespace(t, "nocfg", nil).Name
		ctx, logs := logCtx(t, "setup")
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		m := newManager(t, env.Clientset, ns, options(ns, "certs-"+ns))
		err := m.Setup(ctx)
		if !errors.Is(err, certs.ErrWebhookConfigMissing) || !strings.Contains(err.Error(), "certs-"+ns) {
			t.Fatalf("Setup: %v, want ErrWebhookConfigMissing naming the configuration", err)
		}
		if !logs.has("webhook configuration not found; retrying") {
			t.Fatal("retries not logged")
		}
		if _, err := env.Clientset.CoreV1().Secrets(ns).Get(t.Context(), "wh-cert", metav1.GetOptions{}); err != nil {
			t.Fatalf("the certificate was not stored meanwhile: %v", err)
		}
	})
}
