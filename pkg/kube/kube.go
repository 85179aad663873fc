// Package kube builds the Kubernetes client configuration every service uses.
package kube

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Options say which cluster to talk to and how hard.
type Options struct {
	Kubeconfig string
	// QPS and Burst are raised from client-go's 5/10, which would otherwise dominate the
	// fan-out of the watchers (one team PodDefault → hundreds of copies).
	QPS   float32
	Burst int
}

// DefaultOptions returns the defaults of SPEC §6.
func DefaultOptions() Options { return Options{QPS: 200, Burst: 400} }

// BindFlags binds the client flags.
func (o *Options) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig,
		"kubeconfig of the cluster to talk to (default: in-cluster config, else $KUBECONFIG, else ~/.kube/config)")
	fs.Float32Var(&o.QPS, "kube-api-qps", o.QPS, "queries per second to the API server")
	fs.IntVar(&o.Burst, "kube-api-burst", o.Burst, "burst of queries to the API server")
}

// Validate checks the options.
func (o Options) Validate() error {
	if o.QPS <= 0 {
		return fmt.Errorf("--kube-api-qps: must be positive, got %v", o.QPS)
	}
	if o.Burst <= 0 {
		return fmt.Errorf("--kube-api-burst: must be positive, got %d", o.Burst)
	}
	return nil
}

// RESTConfig resolves the cluster: --kubeconfig, else in-cluster, else $KUBECONFIG, else
// ~/.kube/config.
func (o Options) RESTConfig() (*rest.Config, error) {
	cfg, err := o.load()
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = o.QPS, o.Burst
	return cfg, nil
}

func (o Options) load() (*rest.Config, error) {
	if o.Kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("load kubeconfig %s: %w", o.Kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err == nil {
		return cfg, nil
	}
	if !errors.Is(err, rest.ErrNotInCluster) {
		return nil, fmt.Errorf("load in-cluster config: %w", err)
	}
	path := os.Getenv("KUBECONFIG")
	if path == "" {
		home, herr := os.UserHomeDir()
		if herr != nil {
			return nil, fmt.Errorf("no in-cluster config, no $KUBECONFIG and no home directory: %w", herr)
		}
		path = filepath.Join(home, ".kube", "config")
	}
	rules := &clientcmd.ClientConfigLoadingRules{Precedence: filepath.SplitList(path)}
	cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

// Clientset builds a typed clientset for cfg.
func Clientset(cfg *rest.Config) (kubernetes.Interface, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build clientset: %w", err)
	}
	return cs, nil
}
