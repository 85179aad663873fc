package chartmanager_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	helmchart "helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/orbit-workbench/orbit-controller/services/userspace-chart-manager/internal/desired"
	"github.com/orbit-workbench/orbit-controller/services/userspace-chart-manager/internal/helm/helmtest"
)

// BenchmarkInstall100UserNamespaces creates 100 user namespaces at once in a team whose
// repository holds two charts and measures how long the service (default workers, production
// API client limits of 200 QPS / 400 burst) takes until all 200 releases are deployed, and its
// peak memory. Then, as the limit, a plain sequential loop of Helm SDK installs of the same 200
// releases (one action configuration, charts loaded once, same client limits, same client-side
// validation setting).
//
// Peak memory is the test process's VmHWM from /proc/self/status, reset through
// /proc/self/clear_refs once the service is ready, so it is the service's peak during the
// burst plus the test's own small baseline (clients, loopback repository).
//
// Run: go test ./internal/chartmanager -run '^$' -bench Install100 -benchtime 1x -timeout 20m
func BenchmarkInstall100UserNamespaces(b *testing.B) {
	const users = 100
	alpha, beta := chart(b, "alpha", "0.1.0"), chart(b, "beta", "0.1.0")
	repo := helmtest.NewRepo(b, alpha, beta)
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 200, 400 // kube.DefaultOptions, what the binary runs with
	meta, err := metadata.NewForConfig(env.Config)
	if err != nil {
		b.Fatal(err)
	}

	for i := 0; i < b.N; i++ {
		b.StopTimer()
		teamNS := team(b, repo.URL)
		opts := defaultTestOptions(b)
		if w := os.Getenv("BENCH_WORKERS"); w != "" {
			opts.Workers, _ = strconv.Atoi(w)
		}
		svc := startServiceWithConfig(b, cfg, opts, true)
		runtime.GC()
		if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
			b.Logf("cannot reset peak RSS (%v); the figure includes setup", err)
		}
		baseline := procStatus(b, "VmRSS:")
		b.StartTimer()

		start := time.Now()
		createUsers(b, teamNS, "u", users, true)
		deployed := 0
		for deployed < 2*users {
			if time.Since(start) > 5*time.Minute {
				b.Fatalf("only %d of %d releases deployed after 5 minutes", deployed, 2*users)
			}
			time.Sleep(50 * time.Millisecond)
			list, err := meta.Resource(corev1.SchemeGroupVersion.WithResource("secrets")).Namespace(teamNS).
				List(context.Background(), metav1.ListOptions{LabelSelector: "owner=helm,status=deployed"})
			if err != nil {
				b.Fatal(err)
			}
			deployed = len(list.Items)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		peak := procStatus(b, "VmHWM:")
		installs := svc.counter(b, "orbit_userspace_chart_manager_installs_total")
		svc.stop()

		plain := plainHelmLoop(b, cfg, alpha, beta, users)

		b.ReportMetric(elapsed.Seconds(), "service_s")
		b.ReportMetric(float64(2*users)/elapsed.Seconds(), "releases/s")
		b.ReportMetric(float64(peak)/(1<<20), "peak_rss_MiB")
		b.ReportMetric(plain.Seconds(), "plain_loop_s")
		b.ReportMetric(float64(2*users)/plain.Seconds(), "plain_releases/s")
		b.ReportMetric(elapsed.Seconds()/plain.Seconds(), "service/plain")
		b.Logf("workers %d: %d releases in %s (%.1f/s, %v installs counted), peak RSS %.1f MiB (%.1f MiB before the burst); plain Helm loop %s (%.1f/s)",
			opts.Workers, 2*users, elapsed.Round(time.Millisecond), float64(2*users)/elapsed.Seconds(), installs,
			float64(peak)/(1<<20), float64(baseline)/(1<<20), plain.Round(time.Millisecond), float64(2*users)/plain.Seconds())
		b.StartTimer()
	}
}

// createUsers creates n namespaces <team>-<prefix><i>, ten at a time, as user namespaces when
// orbit is set.
func createUsers(b *testing.B, team, prefix string, n int, orbit bool) []string {
	names := make([]string, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 10)
	errs := make(chan error, n)
	for i := range n {
		names[i] = fmt.Sprintf("%s-%s%03d", team, prefix, i)
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: names[i]}}
		if orbit {
			ns.Labels = map[string]string{"orbit/space": "user", "orbit/team": team, "orbit/env": "dev", "orbit/user": fmt.Sprintf("%s%03d", prefix, i)}
			ns.Annotations = map[string]string{"owner": fmt.Sprintf("%s%03d@example.com", prefix, i)}
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := env.Clientset.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	b.Cleanup(func() {
		for _, name := range names {
			_ = env.Clientset.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
		}
	})
	close(errs)
	for err := range errs {
		b.Fatalf("create namespace: %v", err)
	}
	return names
}

// plainHelmLoop installs the same releases for n fresh namespaces one after another through
// the Helm SDK as its CLI does (ConfigFlags from a kubeconfig, Secrets driver), and returns the
// time the installs took.
func plainHelmLoop(b *testing.B, cfg *rest.Config, alpha, beta helmtest.Archive, n int) time.Duration {
	teamNS := "p" + suffix()
	env.CreateNamespace(b, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: teamNS}})
	users := createUsers(b, teamNS, "u", n, false)
	flags := kubeconfigFlags(b, cfg, teamNS)
	ac := new(action.Configuration)
	if err := ac.Init(flags, teamNS, "secret", func(string, ...any) {}); err != nil {
		b.Fatal(err)
	}
	charts := []*helmchart.Chart{}
	for _, a := range []helmtest.Archive{alpha, beta} {
		ch, err := loader.LoadArchive(bytes.NewReader(a.Data))
		if err != nil {
			b.Fatal(err)
		}
		charts = append(charts, ch)
	}
	start := time.Now()
	for _, u := range users {
		for _, ch := range charts {
			in := action.NewInstall(ac)
			in.Namespace = teamNS
			in.ReleaseName = desired.ReleaseName(u, ch.Name())
			in.Labels = desired.ReleaseLabels(u)
			in.DisableOpenAPIValidation = true
			vals := map[string]any{"user": u, "user_email": u + "@x", "namespace": u, "user_efsapid": ""}
			if _, err := in.RunWithContext(context.Background(), ch, vals); err != nil {
				b.Fatalf("plain install %s: %v", in.ReleaseName, err)
			}
		}
	}
	return time.Since(start)
}

// kubeconfigFlags writes cfg as a kubeconfig and returns the CLI's flags pointing at it, with
// the same client limits as cfg.
func kubeconfigFlags(b *testing.B, cfg *rest.Config, namespace string) *genericclioptions.ConfigFlags {
	dir := b.TempDir()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["test"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test", Namespace: namespace}
	kc.CurrentContext = "test"
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		b.Fatal(err)
	}
	cacheDir := filepath.Join(dir, "cache")
	flags := genericclioptions.NewConfigFlags(true)
	flags.KubeConfig, flags.Namespace, flags.CacheDir = &path, &namespace, &cacheDir
	flags.WrapConfigFn = func(c *rest.Config) *rest.Config {
		c.QPS, c.Burst = cfg.QPS, cfg.Burst
		return c
	}
	return flags
}

// procStatus reads a memory figure (bytes) such as VmHWM: from /proc/self/status.
func procStatus(b *testing.B, field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatalf("no %s in /proc/self/status", field)
	return 0
}
