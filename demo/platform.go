package main

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

// platform is everything the demo started.
type platform struct {
	env        *testenv.Env
	Kubeconfig string
	LogDir     string
	procs      []*service
	fixtures   *fixtures
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

func startPlatform(ctx context.Context, opts options, r *report) (*platform, error) {
	p := &platform{}
	workDir, err := filepath.Abs(opts.WorkDir)
	if err != nil {
		return nil, err
	}
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
		p.env = env
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
		p.fixtures = f
		return fmt.Sprintf("charts at %s, source registry %s (image %s), mirror registry %s",
			f.ChartRepoURL, f.SourceHost, f.NotebookImage, f.MirrorHost), nil
	})
	if !ok {
		return p, errors.New("fixtures did not start")
	}

	ok = r.Step("start the six services as local processes", func() (string, error) {
		return p.startServices(ctx, binDir)
	})
	if !ok {
		return p, errors.New("services did not start")
	}
	return p, nil
}

var serviceNames = []string{"userspace-chart-manager", "podsettings-watcher", "poddefaults-watcher", "pod-modifier", "image-updater", "image-replicator"}

func (p *platform) startServices(ctx context.Context, binDir string) (string, error) {
	common := []string{"--kubeconfig=" + p.Kubeconfig, "--namespace=" + systemNS, "--log-format=console"}
	webhookAddr := map[string]string{}
	for _, hook := range []struct{ name, path string }{{"pod-modifier", "/pod-pod-setting"}, {"image-updater", "/pod-image-replication"}} {
		addr, err := freeAddr()
		if err != nil {
			return "", err
		}
		webhookAddr[hook.name] = addr
		if err := p.registerWebhook(ctx, hook.name, "https://"+addr+hook.path); err != nil {
			return "", err
		}
	}
	certFlags := func(name string) []string {
		return []string{
			"--listen-address=" + webhookAddr[name], "--cert-mode=self-signed", "--cert-secret=" + name + "-cert",
			"--service-name=" + name, "--webhook-config=orbit-" + name, "--cert-extra-hosts=127.0.0.1",
		}
	}
	args := map[string][]string{
		"userspace-chart-manager": {"--resync-period=30s"},
		"podsettings-watcher":     nil,
		"poddefaults-watcher":     nil,
		"pod-modifier":            certFlags("pod-modifier"),
		"image-updater": append(certFlags("image-updater"),
			"--repo-host="+p.fixtures.MirrorHost, "--repo-prefix=orbit-demo", "--replication-backend=copy"),
		"image-replicator": {"--backend=copy", "--repo-host=" + p.fixtures.MirrorHost, "--repo-prefix=orbit-demo"},
	}
	for _, name := range serviceNames {
		addr, err := freeAddr()
		if err != nil {
			return "", err
		}
		s := &service{name: name, addr: addr, log: filepath.Join(p.LogDir, name+".log"), done: make(chan error, 1)}
		logf, err := os.Create(s.log)
		if err != nil {
			return "", fmt.Errorf("log file: %w", err)
		}
		s.cmd = exec.Command(filepath.Join(binDir, name), append(append(append([]string{}, common...), "--http-address="+addr), args[name]...)...)
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
func (p *platform) registerWebhook(ctx context.Context, name, url string) error {
	fail := admissionregistrationv1.Fail
	sideEffects := admissionregistrationv1.SideEffectClassNone
	if name == "image-updater" {
		sideEffects = admissionregistrationv1.SideEffectClassNoneOnDryRun
	}
	ifNeeded := admissionregistrationv1.IfNeededReinvocationPolicy
	timeout := int32(10)
	whc := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "orbit-" + name},
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
	_, err := p.env.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, whc, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("register webhook %s: %w", name, err)
	}
	return nil
}

// Stop stops every process the demo started: services first (SIGTERM, graceful), then the
// control plane and the loopback servers.
func (p *platform) Stop(r *report) {
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
	if p.fixtures != nil {
		p.fixtures.Close()
	}
	if p.env != nil {
		p.env.Stop()
	}
	fmt.Fprintln(r.out, "Stopped every process the demo started.")
}
