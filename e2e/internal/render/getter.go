package render

import (
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// RESTClientGetter points Helm's kube client (genericclioptions.RESTClientGetter) at a
// rest.Config, e.g. the test control plane's, with namespace as the default namespace.
type RESTClientGetter struct {
	Config    *rest.Config
	Namespace string
}

// ToRESTConfig returns a copy of the configuration.
func (g *RESTClientGetter) ToRESTConfig() (*rest.Config, error) {
	return rest.CopyConfig(g.Config), nil
}

// ToDiscoveryClient returns a memory-cached discovery client.
func (g *RESTClientGetter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(rest.CopyConfig(g.Config))
	if err != nil {
		return nil, err
	}
	return memory.NewMemCacheClient(dc), nil
}

// ToRESTMapper returns a discovery-backed mapper that knows short names.
func (g *RESTClientGetter) ToRESTMapper() (meta.RESTMapper, error) {
	dc, err := g.ToDiscoveryClient()
	if err != nil {
		return nil, err
	}
	return restmapper.NewShortcutExpander(restmapper.NewDeferredDiscoveryRESTMapper(dc), dc, nil), nil
}

// ToRawKubeConfigLoader returns a kubeconfig equivalent to the rest.Config, whose current
// context's namespace is Namespace.
func (g *RESTClientGetter) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{
		Server:                   g.Config.Host,
		CertificateAuthorityData: g.Config.CAData,
		CertificateAuthority:     g.Config.CAFile,
		InsecureSkipTLSVerify:    g.Config.Insecure,
	}
	cfg.AuthInfos["test"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: g.Config.CertData,
		ClientCertificate:     g.Config.CertFile,
		ClientKeyData:         g.Config.KeyData,
		ClientKey:             g.Config.KeyFile,
		Token:                 g.Config.BearerToken,
	}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test", Namespace: g.Namespace}
	cfg.CurrentContext = "test"
	return clientcmd.NewDefaultClientConfig(*cfg, &clientcmd.ConfigOverrides{})
}
