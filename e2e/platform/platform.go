package platform

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/orbit-workbench/orbit-controller/pkg/testenv"
)

const systemNS = "orbit-system"

// Options say where the binaries are and how each service runs.
type Options struct {
	BinDir  string
	WorkDir string
	// Prepare runs once the control plane is up, before any service starts (e.g. to apply the
	// chart's RBAC).
	Prepare func(ctx context.Context, p *Platform) error
	// Service may change how a service runs (its kubeconfig, arguments, webhook configuration
	// name); nil runs every service with the demo's defaults as cluster-admin.
	Service func(name string, spec ServiceSpec) (ServiceSpec, error)
}

// ServiceSpec is how one service process runs.
type ServiceSpec struct {
	Kubeconfig []byte
	Args       []string
	// WebhookConfig names the MutatingWebhookConfiguration registered for a webhook service.
	WebhookConfig string
}

// Platform is everything the demo started.
type Platform struct {
	Env        *testenv.Env
	Kubeconfig string
	LogDir     string
	Fixtures   *Fixtures
	// WebhookAddr is the TLS listener of each webhook service.
	WebhookAddr map[string]string
	procs       []*service
	workDir     string
}

type service struct {
	name string
	addr string // plain-HTTP ops listener
	cmd  *exec.Cmd
	done chan error
	log  string
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Start brings the platform up; on error the returned Platform (if any) must still be stopped.
func Start(ctx context.Context, opts Options, r *Report) (*Platform, error) {
	p := &Platform{WebhookAddr: map[string]string{}}
	workDir, err := filepath.Abs(opts.WorkDir)
	if err != nil {
		return nil, err
	}
	p.workDir = workDir
	p.LogDir = filepath.Join(workDir, "logs")
	if err := os.MkdirAll(p.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("log folder: %w", err)
	}
	binDir, err := filepath.Abs(opts.BinDir)
	if err != nil {
		return nil, err
	}
	for _, name := range serviceNames {
		if _, err := os.Stat(filepath.Join(binDir, name)); err != nil {
			return nil, fmt.Errorf("binary %s missing in %s: run `make build` first", name, binDir)
		}
	}

	ok := r.Step("start the control plane (etcd, kube-apiserver, kube-controller-manager)", func() (string, error) {
		env, err := testenv.Start(testenv.Options{})
		if err != nil {
			return "", err
		}
		p.Env = env
		kc, err := env.Kubeconfig("orbit-demo")
		if err != nil {
			return "", err
		}
		p.Kubeconfig = filepath.Join(workDir, "kubeconfig")
		if err := os.WriteFile(p.Kubeconfig, kc, 0o600); err != nil {
			return "", fmt.Errorf("write kubeconfig: %w", err)
		}
		v, err := env.Clientset.Discovery().ServerVersion()
		if err != nil {
			return "", err
		}
		_, err = env.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: systemNS, Labels: map[string]string{"orbit/space": "env"},
		}}, metav1.CreateOptions{})
		if err != nil {
			return "", fmt.Errorf("create %s: %w", systemNS, err)
		}
		return fmt.Sprintf("Kubernetes %s up, CRDs installed, namespace %s created", v.GitVersion, systemNS), nil
	})
	if !ok {
		return p, errors.New("control plane did not start")
	}

	ok = r.Step("serve a Helm chart repository and two image registries on loopback", func() (string, error) {
		f, err := startFixtures(ctx)
		if err != nil {
			return "", err
		}
		p.Fixtures = f
		return fmt.Sprintf("charts at %s, source registry %s (image %s), mirror registry %s",
			f.ChartRepoURL, f.SourceHost, f.NotebookImage, f.MirrorHost), nil
	})
	if !ok {
		return p, errors.New("fixtures did not start")
	}
	if opts.Prepare != nil {
		if !r.Step("prepare the cluster", func() (string, error) { return "done", opts.Prepare(ctx, p) }) {
			return p, errors.New("preparation failed")
		}
	}

	ok = r.Step("start the six services as local processes", func() (string, error) {
		return p.startServices(ctx, binDir, opts.Service)
	})
	if !ok {
		return p, errors.New("services did not start")
	}
	return p, nil
}

var serviceNames = []string{"userspace-chart-manager", "podsettings-watcher", "poddefaults-watcher", "pod-modifier", "image-updater", "image-replicator"}

// webhookPaths are the fixed paths of SPEC §3.2 and §3.5.
var webhookPaths = map[string]string{"pod-modifier": "/pod-pod-setting", "image-updater": "/pod-image-replication"}

func (p *Platform) startServices(ctx context.Context, binDir string, custom func(string, ServiceSpec) (ServiceSpec, error)) (string, error) {
	adminKubeconfig, err := os.ReadFile(p.Kubeconfig)
	if err != nil {
		return "", err
	}
	webhookAddr := p.WebhookAddr
	for name := range webhookPaths {
		addr, err := freeAddr()
		if err != nil {
			return "", err
		}
		webhookAddr[name] = addr
	}
	certFlags := func(name string) []string {
		return []string{"--cert-mode=self-signed", "--cert-secret=" + name + "-cert", "--service-name=" + name, "--webhook-config=orbit-" + name}
	}
	args := map[string][]string{
		"userspace-chart-manager": {"--resync-period=30s"},
		"podsettings-watcher":     nil,
		"poddefaults-watcher":     nil,
		"pod-modifier":            certFlags("pod-modifier"),
		"image-updater": append(certFlags("image-updater"),
			"--repo-host="+p.Fixtures.MirrorHost, "--repo-prefix=orbit-demo", "--replication-backend=copy"),
		"image-replicator": {"--backend=copy", "--repo-host=" + p.Fixtures.MirrorHost, "--repo-prefix=orbit-demo"},
	}
	for _, name := range serviceNames {
		addr, err := freeAddr()
		if err != nil {
			return "", err
		}
		spec := ServiceSpec{Kubeconfig: adminKubeconfig, Args: append([]string{"--namespace=" + systemNS}, args[name]...), WebhookConfig: "orbit-" + name}
		if custom != nil {
			if spec, err = custom(name, spec); err != nil {
				return "", fmt.Errorf("%s: %w", name, err)
			}
		}
		kubeconfig := filepath.Join(p.workDir, name+".kubeconfig")
		if err := os.WriteFile(kubeconfig, spec.Kubeconfig, 0o600); err != nil {
			return "", fmt.Errorf("write kubeconfig: %w", err)
		}
		if path, ok := webhookPaths[name]; ok {
			if err := p.registerWebhook(ctx, name, spec.WebhookConfig, "https://"+webhookAddr[name]+path); err != nil {
				return "", err
			}
		}
		// The demo's own flags come last: pflag keeps the last value of a flag.
		full := append(append([]string{}, spec.Args...), "--kubeconfig="+kubeconfig, "--http-address="+addr, "--log-format=console")
		if _, ok := webhookPaths[name]; ok {
			full = append(full, "--listen-address="+webhookAddr[name], "--cert-extra-hosts=127.0.0.1")
		}
		s := &service{name: name, addr: addr, log: filepath.Join(p.LogDir, name+".log"), done: make(chan error, 1)}
		logf, err := os.Create(s.log)
		if err != nil {
			return "", fmt.Errorf("log file: %w", err)
		}
		s.cmd = exec.Command(filepath.Join(binDir, name), full...)
		s.cmd.Stdout, s.cmd.Stderr = logf, logf
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		if err := s.cmd.Start(); err != nil {
			return "", fmt.Errorf("start %s: %w", name, err)
		}
		go func() { s.done <- s.cmd.Wait(); logf.Close() }()
		p.procs = append(p.procs, s)
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, s := range p.procs {
		for {
			select {
			case err := <-s.done:
				return "", fmt.Errorf("%s exited: %v (log: %s)\n%s", s.name, err, s.log, tail(s.log, 15))
			default:
			}
			resp, err := http.Get("http://" + s.addr + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				return "", fmt.Errorf("%s not ready within 60s (log: %s)\n%s", s.name, s.log, tail(s.log, 15))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return fmt.Sprintf("%d services ready (/readyz); webhooks registered by URL, CA bundles injected by the services; logs in %s", len(p.procs), p.LogDir), nil
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// registerWebhook creates the MutatingWebhookConfiguration the chart would, pointing at a
// local URL; the service injects its CA bundle itself (self-signed mode).
func (p *Platform) registerWebhook(ctx context.Context, name, configName, url string) error {
	fail := admissionregistrationv1.Fail
	sideEffects := admissionregistrationv1.SideEffectClassNone
	if name == "image-updater" {
		sideEffects = admissionregistrationv1.SideEffectClassNoneOnDryRun
	}
	ifNeeded := admissionregistrationv1.IfNeededReinvocationPolicy
	timeout := int32(10)
	whc := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: configName},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         name + ".orbit.aws",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: "orbit/space", Operator: metav1.LabelSelectorOpIn, Values: []string{"team", "user"},
			}}},
			FailurePolicy: &fail, SideEffects: &sideEffects, ReinvocationPolicy: &ifNeeded,
			AdmissionReviewVersions: []string{"v1"}, TimeoutSeconds: &timeout,
		}},
	}
	_, err := p.Env.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, whc, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("register webhook %s: %w", name, err)
	}
	return nil
}

// Stop stops every process the demo started: services first (SIGTERM, graceful), then the
// control plane and the loopback servers.
func (p *Platform) Stop(r *Report) {
	for _, s := range p.procs {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, s := range p.procs {
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
			r.Info("%s did not stop within 20s; killed", s.name)
		}
	}
	if p.Fixtures != nil {
		p.Fixtures.Close()
	}
	if p.Env != nil {
		p.Env.Stop()
	}
	fmt.Fprintln(r.out, "Stopped every process the demo started.")
}
