package chartmanager

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/orbit-workbench/orbit-controller/pkg/controller"
	"github.com/orbit-workbench/orbit-controller/services/userspace-chart-manager/internal/s3store"
)

// Options configure the service.
type Options struct {
	controller.WatcherOptions
	// Resync is how often every namespace is converged again (charts added to a repository
	// since, releases whose user namespace vanished unseen).
	Resync time.Duration
	// InstallTimeout bounds a chart's hooks.
	InstallTimeout time.Duration
	// ProfileWait bounds the wait for a deleted team's Kubeflow Profiles to disappear before
	// its namespaces are deleted.
	ProfileWait time.Duration
	// IndexTTL bounds how stale a repository's chart list may be.
	IndexTTL time.Duration
	// ChartCacheBytes caps the chart archives kept in memory.
	ChartCacheBytes int64
	// RepositoryTimeout bounds one repository read.
	RepositoryTimeout time.Duration
	// PlainHTTPRegistries are OCI registries (host:port) spoken to over plain HTTP.
	PlainHTTPRegistries []string
	S3                  s3store.Options

	// Namespace holds the Lease and the state ConfigMap (the common --namespace flag).
	Namespace string
	// Identity names this replica in leader election; empty means hostname and start time.
	Identity string
}

// DefaultWorkers is higher than the watchers' default: a Helm install is a handful of
// sequential API round trips, so throughput grows with concurrency until the API client's
// QPS limit.
const DefaultWorkers = 8

// DefaultOptions returns the service defaults.
func DefaultOptions() Options {
	w := controller.DefaultWatcherOptions()
	w.Workers = DefaultWorkers
	return Options{
		WatcherOptions:    w,
		Resync:            5 * time.Minute,
		InstallTimeout:    5 * time.Minute,
		ProfileWait:       2 * time.Minute,
		IndexTTL:          time.Minute,
		ChartCacheBytes:   32 << 20,
		RepositoryTimeout: 30 * time.Second,
		S3:                s3store.DefaultOptions(),
		Namespace:         "orbit-system",
	}
}

// BindFlags binds the service's flags.
func (o *Options) BindFlags(fs *pflag.FlagSet) {
	o.WatcherOptions.BindFlags(fs)
	fs.DurationVar(&o.Resync, "resync-period", o.Resync, "how often every user namespace is converged again (new charts, vanished namespaces)")
	fs.DurationVar(&o.InstallTimeout, "install-timeout", o.InstallTimeout, "bound on a chart's hooks during install and uninstall")
	fs.DurationVar(&o.ProfileWait, "profile-wait-timeout", o.ProfileWait, "how long a deleted team's Kubeflow Profiles are waited for before its namespaces are deleted")
	fs.DurationVar(&o.IndexTTL, "repository-index-ttl", o.IndexTTL, "how long a repository's chart list is reused")
	fs.Int64Var(&o.ChartCacheBytes, "chart-cache-bytes", o.ChartCacheBytes, "bytes of chart archives kept in memory")
	fs.DurationVar(&o.RepositoryTimeout, "repository-timeout", o.RepositoryTimeout, "bound on one repository read")
	fs.StringSliceVar(&o.PlainHTTPRegistries, "plain-http-registries", o.PlainHTTPRegistries, "OCI registries (host:port) reached over plain HTTP")
	o.S3.BindFlags(fs)
}

// Validate checks the options; the error names the flag at fault.
func (o Options) Validate() error {
	if err := o.WatcherOptions.Validate(); err != nil {
		return err
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"--resync-period", o.Resync}, {"--install-timeout", o.InstallTimeout},
		{"--profile-wait-timeout", o.ProfileWait}, {"--repository-index-ttl", o.IndexTTL},
		{"--repository-timeout", o.RepositoryTimeout},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%s: must be positive, got %s", d.flag, d.v)
		}
	}
	if o.ChartCacheBytes < 0 {
		return fmt.Errorf("--chart-cache-bytes: must not be negative, got %d", o.ChartCacheBytes)
	}
	if o.Namespace == "" {
		return errors.New("--namespace: must not be empty")
	}
	return nil
}
