package helm

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"helm.sh/helm/v3/pkg/registry"
)

// registry returns Helm's registry client for a host and credentials, made once.
func (r *Repositories) registry(host string, src Source) (*registry.Client, error) {
	plain := r.plainHTTP[host]
	key := fmt.Sprintf("%t\x00%s", plain, src.key())
	r.mu.Lock()
	defer r.mu.Unlock()
	if rc, ok := r.registries[key]; ok {
		return rc, nil
	}
	opts := []registry.ClientOption{
		registry.ClientOptHTTPClient(&http.Client{Transport: r.transport, Timeout: r.opts.Timeout}),
		registry.ClientOptEnableCache(true),
	}
	if plain {
		opts = append(opts, registry.ClientOptPlainHTTP())
	}
	if src.Username != "" || src.Password != "" {
		opts = append(opts, registry.ClientOptBasicAuth(src.Username, src.Password))
	}
	c, err := registry.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("registry client for %s: %w", host, err)
	}
	r.registries[key] = c
	return c, nil
}

// listOCI lists oci://host/path: every repository directly under path (from the registry's
// catalog) is a chart, and its newest semver tag, development versions included, the version.
// Registries that serve no catalog (ECR, Docker Hub) cannot be listed this way.
func (r *Repositories) listOCI(ctx context.Context, src Source, u *url.URL) ([]ChartVersion, error) {
	host, prefix := u.Host, strings.Trim(u.Path, "/")
	var nameOpts []name.Option
	if r.plainHTTP[host] {
		nameOpts = append(nameOpts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", host, err)
	}
	auth := authn.Anonymous
	if src.Username != "" || src.Password != "" {
		auth = &authn.Basic{Username: src.Username, Password: src.Password}
	}
	repos, err := remote.Catalog(ctx, reg, remote.WithContext(ctx), remote.WithTransport(r.transport), remote.WithAuth(auth))
	if err != nil {
		return nil, fmt.Errorf("list the catalog of %s: %w", host, err)
	}
	rc, err := r.registry(host, src)
	if err != nil {
		return nil, err
	}
	var out []ChartVersion
	for _, repo := range repos {
		rest := repo
		if prefix != "" {
			if !strings.HasPrefix(repo, prefix+"/") {
				continue
			}
			rest = strings.TrimPrefix(repo, prefix+"/")
		}
		if rest == "" || strings.Contains(rest, "/") {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("list %s: %w", src.URL, err)
		}
		tags, err := rc.Tags(host + "/" + repo) // semver tags only, newest first
		if err != nil {
			return nil, fmt.Errorf("list tags of %s/%s: %w", host, repo, err)
		}
		if len(tags) == 0 {
			continue
		}
		out = append(out, ChartVersion{Name: path.Base(repo), Version: tags[0], URL: "oci://" + host + "/" + repo + ":" + tags[0]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (r *Repositories) pullOCI(src Source, cv ChartVersion) ([]byte, error) {
	ref := strings.TrimPrefix(cv.URL, "oci://")
	host, _, _ := strings.Cut(ref, "/")
	rc, err := r.registry(host, src)
	if err != nil {
		return nil, err
	}
	res, err := rc.Pull(ref, registry.PullOptWithChart(true))
	if err != nil {
		return nil, err
	}
	if res.Chart == nil || len(res.Chart.Data) == 0 {
		return nil, fmt.Errorf("%s holds no chart layer", ref)
	}
	return res.Chart.Data, nil
}
