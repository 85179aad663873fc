// Package testenv starts the real control plane for tests: etcd and kube-apiserver through
// controller-runtime's envtest, and kube-controller-manager beside them (garbage collector,
// namespace, service-account and CSR controllers), all built from source by
// `make kube-binaries` into .cache/kube. It installs the chart's CRDs and the Kubeflow fixture
// CRDs and hands tests a rest.Config. One control plane per test package (TestMain); tests
// keep apart by using their own namespaces.
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// BinariesEnv overrides where the control-plane binaries are looked for.
const BinariesEnv = "ORBIT_KUBE_BINARIES"

// Options choose what runs beside the API server.
type Options struct {
	// NoControllerManager skips kube-controller-manager (tests that need no GC or namespace
	// deletion start faster).
	NoControllerManager bool
	// APIServerArgs are extra kube-apiserver flags, e.g. "--enable-admission-plugins=…".
	APIServerArgs map[string]string
	// Log receives the control plane's output; nil discards it (set ORBIT_TESTENV_VERBOSE=1
	// to see it on stderr).
	Log io.Writer
}

// Env is a running control plane.
type Env struct {
	Config    *rest.Config
	Clientset kubernetes.Interface
	Dynamic   dynamic.Interface
	// RepoRoot is the repository's root (where go.work lives).
	RepoRoot string
	// SigningCA is the CA kube-controller-manager signs CSRs with (PEM).
	SigningCA []byte

	env     *envtest.Environment
	kcm     *exec.Cmd
	kcmDone chan error
	tmp     string
	stopped sync.Once
}

// RepoRoot walks up from the working directory to the folder holding go.work.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory: run tests inside the repository")
		}
		dir = parent
	}
}

// BinariesDir is where kube-apiserver, etcd and kube-controller-manager are.
func BinariesDir(root string) string {
	if dir := os.Getenv(BinariesEnv); dir != "" {
		return dir
	}
	return filepath.Join(root, ".cache", "kube")
}

// Start brings up the control plane. The caller must Stop it.
func Start(opts Options) (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	bin := BinariesDir(root)
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			return nil, fmt.Errorf("control-plane binary %s missing in %s: run `make kube-binaries` first", name, bin)
		}
	}
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
		if os.Getenv("ORBIT_TESTENV_VERBOSE") != "" {
			logw = os.Stderr
		}
	}
	tmp, err := os.MkdirTemp("", "orbit-testenv-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	e := &Env{RepoRoot: root, tmp: tmp}
	e.env = &envtest.Environment{
		BinaryAssetsDirectory: bin,
		CRDDirectoryPaths: []string{
			filepath.Join(root, "charts", "orbit-controller", "crds"),
			filepath.Join(root, "pkg", "testenv", "testdata", "crds"),
		},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
		AttachControlPlaneOutput: logw != io.Discard,
	}
	api := e.env.ControlPlane.GetAPIServer()
	api.Out, api.Err = logw, logw
	args := api.Configure()
	for k, v := range opts.APIServerArgs {
		args.Set(k, v)
	}
	cfg, err := e.env.Start()
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, fmt.Errorf("start etcd and kube-apiserver: %w", err)
	}
	cfg.QPS, cfg.Burst = 500, 1000
	e.Config = cfg
	if e.Clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		e.Stop()
		return nil, fmt.Errorf("clientset: %w", err)
	}
	if e.Dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		e.Stop()
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	if !opts.NoControllerManager {
		if err := e.startControllerManager(bin, api.CertDir, logw); err != nil {
			e.Stop()
			return nil, err
		}
	}
	return e, nil
}

// controllers are the kube-controller-manager loops the services rely on.
var controllers = []string{
	"garbage-collector-controller",
	"namespace-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"certificatesigningrequest-signing-controller",
	"certificatesigningrequest-approving-controller",
	"certificatesigningrequest-cleaner-controller",
}

func (e *Env) startControllerManager(bin, certDir string, logw io.Writer) error {
	user, err := e.env.ControlPlane.AddUser(envtest.User{Name: "kube-controller-manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("kube-controller-manager user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("kube-controller-manager kubeconfig: %w", err)
	}
	kcPath := filepath.Join(e.tmp, "kcm.kubeconfig")
	if err := os.WriteFile(kcPath, kubeconfig, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	caCert, caKey, err := newCA("orbit-testenv-signer")
	if err != nil {
		return err
	}
	e.SigningCA = caCert
	caPath, keyPath := filepath.Join(e.tmp, "signer.crt"), filepath.Join(e.tmp, "signer.key")
	if err := os.WriteFile(caPath, caCert, 0o600); err != nil {
		return fmt.Errorf("write signer cert: %w", err)
	}
	if err := os.WriteFile(keyPath, caKey, 0o600); err != nil {
		return fmt.Errorf("write signer key: %w", err)
	}
	cmd := exec.Command(filepath.Join(bin, "kube-controller-manager"),
		"--kubeconfig="+kcPath,
		"--leader-elect=false",
		"--secure-port=0",
		"--controllers="+strings.Join(controllers, ","),
		"--service-account-private-key-file="+filepath.Join(certDir, "sa-signer.key"),
		"--cluster-signing-cert-file="+caPath,
		"--cluster-signing-key-file="+keyPath,
		"--use-service-account-credentials=false",
		// Tests delete and recreate quickly; the defaults are tuned for big clusters.
		"--concurrent-gc-syncs=10",
		"--concurrent-namespace-syncs=10",
		"--namespace-sync-period=10s",
	)
	cmd.Stdout, cmd.Stderr = logw, logw
	// The kernel stops the controller manager if the test binary dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start kube-controller-manager: %w", err)
	}
	e.kcm = cmd
	e.kcmDone = make(chan error, 1)
	go func() { e.kcmDone <- cmd.Wait() }()

	// The service-account controller creating "default" proves the manager runs and syncs.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-e.kcmDone:
			return false, fmt.Errorf("kube-controller-manager exited: %v", err)
		default:
		}
		_, err := e.Clientset.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("wait for kube-controller-manager: %w", err)
	}
	return nil
}

// Kubeconfig returns a kubeconfig for a cluster-admin user of this control plane, for
// processes started beside it (the demo's services, kubectl).
func (e *Env) Kubeconfig(user string) ([]byte, error) {
	u, err := e.env.ControlPlane.AddUser(envtest.User{Name: user, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("add user %s: %w", user, err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig for %s: %w", user, err)
	}
	return kc, nil
}

// KubeconfigFile writes a cluster-admin kubeconfig into the test's temporary folder and
// returns its path, for a service started through its command line (--kubeconfig).
func (e *Env) KubeconfigFile(t testing.TB) string {
	t.Helper()
	kc, err := e.Kubeconfig("test-admin")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatalf("write kubeconfig: %v", err)
	}
	return path
}

// FreeAddress returns a loopback host:port nothing listens on right now.
func FreeAddress(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Stop stops every process Start started and removes temporary files.
func (e *Env) Stop() {
	e.stopped.Do(func() {
		if e.kcm != nil && e.kcm.Process != nil {
			_ = e.kcm.Process.Signal(syscall.SIGTERM)
			select {
			case <-e.kcmDone:
			case <-time.After(10 * time.Second):
				_ = e.kcm.Process.Kill()
				<-e.kcmDone
			}
		}
		if e.env != nil {
			_ = e.env.Stop()
		}
		_ = os.RemoveAll(e.tmp)
	})
}

// Main runs a test package against one control plane: call it from TestMain.
func Main(m *testing.M, opts Options, env **Env) {
	e, err := Start(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		os.Exit(1)
	}
	*env = e
	code := m.Run()
	e.Stop()
	os.Exit(code)
}

// Namespace creates a namespace with a generated name starting with prefix and the given
// labels, deleted when the test ends.
func (e *Env) Namespace(t testing.TB, prefix string, labels map[string]string) *corev1.Namespace {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Labels: labels}}
	return e.CreateNamespace(t, ns)
}

// CreateNamespace creates ns (deleted when the test ends).
func (e *Env) CreateNamespace(t testing.TB, ns *corev1.Namespace) *corev1.Namespace {
	t.Helper()
	created, err := e.Clientset.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace %s%s: %v", ns.Name, ns.GenerateName, err)
	}
	t.Cleanup(func() {
		err := e.Clientset.CoreV1().Namespaces().Delete(context.Background(), created.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete namespace %s: %v", created.Name, err)
		}
	})
	return created
}

// Eventually polls cond every 50ms until it holds or timeout passes, then fails the test with
// the last reason cond gave.
func Eventually(t testing.TB, timeout time.Duration, cond func(ctx context.Context) (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	var last string
	for {
		ok, why := cond(ctx)
		if ok {
			return
		}
		last = why
		select {
		case <-ctx.Done():
			t.Fatalf("condition not met within %s: %s", timeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func newCA(cn string) (certPEM, keyPEM []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("self-sign CA: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	return certPEM, keyPEM, nil
}
