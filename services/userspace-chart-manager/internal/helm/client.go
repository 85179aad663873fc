// Package helm is the one place this service calls the Helm SDK (helm.sh/helm/v3): installing
// and uninstalling releases, reading release records, and reading chart repositories (http(s)
// index, OCI registry, S3 bucket). Everything else in the service speaks this package's small
// types, so moving to Helm v4 is a change here only.
package helm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/kube"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/util/flowcontrol"
)

// ErrReleaseExists says an install found the release name taken.
var ErrReleaseExists = errors.New("release exists")

// ClientOptions tune the cluster side.
type ClientOptions struct {
	// Timeout bounds a chart's hooks during install and uninstall.
	Timeout time.Duration
	// DiscoveryTTL is how long the API server's groups, versions and kinds are reused across
	// installs before they are discovered again (a missing kind refreshes them at once).
	DiscoveryTTL time.Duration
}

// DefaultClientOptions: hooks get five minutes; discovery is refreshed every ten.
func DefaultClientOptions() ClientOptions {
	return ClientOptions{Timeout: 5 * time.Minute, DiscoveryTTL: 10 * time.Minute}
}

// Client installs and uninstalls releases, stored by Helm's Secrets driver in the release's
// namespace. It is safe for concurrent use: every call builds its own Helm action
// configuration over shared clients, discovery cache and REST mapper, which is what keeps a
// Helm install to a handful of API calls instead of a full discovery each time.
type Client struct {
	opts      ClientOptions
	config    *rest.Config
	clientset kubernetes.Interface
	discovery discovery.CachedDiscoveryInterface
	mapper    *restmapper.DeferredDiscoveryRESTMapper

	mu     sync.Mutex
	caps   *chartutil.Capabilities
	capsAt time.Time
}

// NewClient builds a client for the cluster cfg points at.
func NewClient(cfg *rest.Config, opts ClientOptions) (*Client, error) {
	cfg = rest.CopyConfig(cfg)
	// Helm builds several clients per action; one shared limiter keeps them all within the
	// configured QPS instead of each getting its own budget.
	if cfg.RateLimiter == nil && cfg.QPS > 0 {
		cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(cfg.QPS, max(cfg.Burst, 1))
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build discovery client: %w", err)
	}
	cached := memory.NewMemCacheClient(dc)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build clientset: %w", err)
	}
	return &Client{
		opts:      opts,
		config:    cfg,
		clientset: cs,
		discovery: cached,
		mapper:    restmapper.NewDeferredDiscoveryRESTMapper(cached),
	}, nil
}

// InstallRequest describes one release.
type InstallRequest struct {
	Namespace string
	Release   string
	Chart     *Chart
	Values    map[string]any
	Labels    map[string]string
}

// Install installs a release. It returns an error wrapping ErrReleaseExists when the name is
// taken (by a release in any state). A failed install leaves a failed release record, as Helm
// does; the caller decides when to uninstall and retry.
func (c *Client) Install(ctx context.Context, req InstallRequest) error {
	ch, err := req.Chart.load()
	if err != nil {
		return err
	}
	cfg, err := c.configuration(ctx, req.Namespace)
	if err != nil {
		return err
	}
	// Hooks are bounded by Timeout; the margin covers the API calls around them.
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout+time.Minute)
	defer cancel()
	in := action.NewInstall(cfg)
	in.Namespace = req.Namespace
	in.ReleaseName = req.Release
	in.Labels = req.Labels
	in.Timeout = c.opts.Timeout
	// The API server validates what it is sent; client-side OpenAPI validation would fetch
	// and parse the cluster's whole OpenAPI document per action.
	in.DisableOpenAPIValidation = true
	if _, err := in.RunWithContext(ctx, ch, req.Values); err != nil {
		if strings.Contains(err.Error(), "cannot re-use a name that is still in use") {
			return fmt.Errorf("install %s/%s: %w", req.Namespace, req.Release, ErrReleaseExists)
		}
		if isNoMatch(err) {
			c.invalidate() // a CRD appeared since discovery; the retry will see it
		}
		return fmt.Errorf("install %s/%s from chart %s %s: %w", req.Namespace, req.Release, req.Chart.Name, req.Chart.Version, err)
	}
	return nil
}

// Uninstall removes a release and its history; a release that does not exist is not an error.
func (c *Client) Uninstall(ctx context.Context, namespace, release string) error {
	cfg, err := c.configuration(ctx, namespace)
	if err != nil {
		return err
	}
	un := action.NewUninstall(cfg)
	un.IgnoreNotFound = true
	un.Timeout = c.opts.Timeout
	un.DeletionPropagation = "background"
	// Helm v3's uninstall takes no context: run it aside and stop waiting when ctx ends.
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout+time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := un.Run(release)
		done <- err
	}()
	select {
	case <-ctx.Done():
		return fmt.Errorf("uninstall %s/%s: %w", namespace, release, ctx.Err())
	case err := <-done:
		if err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
			return fmt.Errorf("uninstall %s/%s: %w", namespace, release, err)
		}
		return nil
	}
}

// ReleaseInfo is what a live release record says.
type ReleaseInfo struct {
	Status string
	Labels map[string]string
}

// Get reads a release's latest revision live from its record; found is false when there is
// none.
func (c *Client) Get(ctx context.Context, namespace, release string) (info ReleaseInfo, found bool, err error) {
	cfg, err := c.configuration(ctx, namespace)
	if err != nil {
		return ReleaseInfo{}, false, err
	}
	rel, err := cfg.Releases.Last(release)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return ReleaseInfo{}, false, nil
	}
	if err != nil {
		return ReleaseInfo{}, false, fmt.Errorf("read release %s/%s: %w", namespace, release, err)
	}
	return ReleaseInfo{Status: rel.Info.Status.String(), Labels: rel.Labels}, true, nil
}

// configuration is a fresh action configuration for one namespace over the shared clients.
func (c *Client) configuration(ctx context.Context, namespace string) (*action.Configuration, error) {
	caps, err := c.capabilities()
	if err != nil {
		return nil, err
	}
	log := zerolog.Ctx(ctx).With().Str("namespace", namespace).Logger()
	debugf := func(format string, v ...any) { log.Debug().Msgf(format, v...) }
	getter := &restGetter{client: c, namespace: namespace}
	kc := kube.New(getter)
	kc.Namespace = namespace
	kc.Log = debugf
	secrets := driver.NewSecrets(c.clientset.CoreV1().Secrets(namespace))
	secrets.Log = debugf
	cfg := &action.Configuration{
		RESTClientGetter: getter,
		KubeClient:       reachableClient{kc},
		Releases:         storage.Init(secrets),
		Capabilities:     caps,
		Log:              debugf,
	}
	cfg.SetHookOutputFunc(func(_, _, _ string) io.Writer { return io.Discard })
	return cfg, nil
}

// capabilities are discovered once per DiscoveryTTL (Helm would discover them on every action).
func (c *Client) capabilities() (*chartutil.Capabilities, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.caps != nil && time.Since(c.capsAt) < c.opts.DiscoveryTTL {
		return c.caps.Copy(), nil
	}
	if c.caps != nil {
		c.discovery.Invalidate()
		c.mapper.Reset()
	}
	v, err := c.discovery.ServerVersion()
	if err != nil {
		return nil, fmt.Errorf("read the API server's version: %w", err)
	}
	versions, err := action.GetVersionSet(c.discovery)
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		return nil, fmt.Errorf("discover API versions: %w", err)
	}
	c.caps = &chartutil.Capabilities{
		APIVersions: versions,
		KubeVersion: chartutil.KubeVersion{Version: v.GitVersion, Major: v.Major, Minor: v.Minor},
		HelmVersion: chartutil.DefaultCapabilities.HelmVersion,
	}
	c.capsAt = time.Now()
	return c.caps.Copy(), nil
}

// invalidate forces discovery on the next action.
func (c *Client) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.capsAt = time.Time{}
}

func isNoMatch(err error) bool {
	return meta.IsNoMatchError(err) || strings.Contains(err.Error(), "no matches for kind")
}

// reachableClient skips Helm's per-action reachability probe (a server-version request): the
// service's informers already prove the API server answers, and a real outage fails the
// action's first request anyway.
type reachableClient struct{ *kube.Client }

func (reachableClient) IsReachable() error { return nil }
