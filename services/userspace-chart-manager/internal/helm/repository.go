package helm

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"
	"sigs.k8s.io/yaml"
)

// ObjectStore reads a bucket (S3); a missing object's error wraps fs.ErrNotExist.
type ObjectStore interface {
	Get(ctx context.Context, bucket, key string) ([]byte, error)
	// List returns the keys under prefix.
	List(ctx context.Context, bucket, prefix string) ([]string, error)
}

// RepositoryOptions tune repository reads and caches.
type RepositoryOptions struct {
	// IndexTTL bounds how stale a repository's chart list may be.
	IndexTTL time.Duration
	// CacheBytes caps the chart archives kept in memory (an archive is immutable once
	// published under a version, so it is kept until evicted for space).
	CacheBytes int64
	// Timeout bounds one fetch.
	Timeout time.Duration
	// PlainHTTPHosts are OCI registries (host or host:port) spoken to over plain HTTP.
	PlainHTTPHosts []string
	// ObjectStore serves s3:// repositories; nil makes them fail.
	ObjectStore ObjectStore
	// UserAgent is sent to http(s) repositories.
	UserAgent string
}

// DefaultRepositoryOptions: a minute of index staleness and 32 MiB of archives.
func DefaultRepositoryOptions() RepositoryOptions {
	return RepositoryOptions{IndexTTL: time.Minute, CacheBytes: 32 << 20, Timeout: 30 * time.Second}
}

// Source is a chart repository and its credentials.
type Source struct {
	URL      string
	Username string
	Password string
}

func (s Source) key() string { return s.URL + "\x00" + s.Username + "\x00" + s.Password }

// ChartVersion is the newest version of one chart in a repository.
type ChartVersion struct {
	Name    string
	Version string
	// Digest is the archive's sha256 from the index (http(s) and s3 index), when given.
	Digest string
	// URL locates the archive: an absolute http(s)/s3 URL, or an OCI reference.
	URL string
}

// Chart is a loaded chart archive. The archive is kept and parsed for each install, because
// Helm's install mutates the chart it is given (dependency processing), so one parsed chart
// cannot be shared by concurrent installs.
type Chart struct {
	Name    string
	Version string
	archive []byte
}

func (c *Chart) load() (*chart.Chart, error) {
	ch, err := loader.LoadArchive(bytes.NewReader(c.archive))
	if err != nil {
		return nil, fmt.Errorf("load chart %s %s: %w", c.Name, c.Version, err)
	}
	return ch, nil
}

// ChartFromArchive checks a chart archive (.tgz) and wraps it.
func ChartFromArchive(data []byte) (*Chart, error) {
	ch, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("load chart archive: %w", err)
	}
	return &Chart{Name: ch.Name(), Version: ch.Metadata.Version, archive: data}, nil
}

// Repositories reads chart repositories with caching: each repository's chart list for
// IndexTTL, archives by URL and digest within CacheBytes. Concurrent readers of the same index
// or archive share one fetch.
type Repositories struct {
	opts      RepositoryOptions
	transport *http.Transport
	plainHTTP map[string]bool

	mu         sync.Mutex
	indexes    map[string]*indexEntry
	archives   *archiveCache
	inflight   map[string]*fetchCall
	registries map[string]*registry.Client
}

type indexEntry struct {
	mu      sync.Mutex
	fetched time.Time
	charts  []ChartVersion
}

type fetchCall struct {
	done  chan struct{}
	chart *Chart
	err   error
}

// NewRepositories returns a repository reader.
func NewRepositories(opts RepositoryOptions) *Repositories {
	plain := map[string]bool{}
	for _, h := range opts.PlainHTTPHosts {
		if h = strings.TrimSpace(h); h != "" {
			plain[h] = true
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	return &Repositories{
		opts:       opts,
		transport:  tr,
		plainHTTP:  plain,
		indexes:    map[string]*indexEntry{},
		archives:   newArchiveCache(opts.CacheBytes),
		inflight:   map[string]*fetchCall{},
		registries: map[string]*registry.Client{},
	}
}

// Latest lists the newest version (development versions included) of every chart in the
// repository, sorted by name. The list is cached for IndexTTL.
func (r *Repositories) Latest(ctx context.Context, src Source) ([]ChartVersion, error) {
	r.mu.Lock()
	e, ok := r.indexes[src.key()]
	if !ok {
		e = &indexEntry{}
		r.indexes[src.key()] = e
	}
	r.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.fetched.IsZero() && time.Since(e.fetched) < r.opts.IndexTTL {
		return e.charts, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	charts, err := r.list(ctx, src)
	if err != nil {
		return nil, err
	}
	e.charts, e.fetched = charts, time.Now()
	return charts, nil
}

func (r *Repositories) list(ctx context.Context, src Source) ([]ChartVersion, error) {
	u, err := url.Parse(src.URL)
	if err != nil {
		return nil, fmt.Errorf("parse repository URL %q: %w", src.URL, err)
	}
	switch u.Scheme {
	case "http", "https":
		data, err := r.httpGet(src, strings.TrimSuffix(src.URL, "/")+"/index.yaml")
		if err != nil {
			return nil, fmt.Errorf("read index of %s: %w", src.URL, err)
		}
		return parseIndex(data, src.URL)
	case "s3":
		return r.listS3(ctx, u)
	case "oci":
		return r.listOCI(ctx, src, u)
	}
	return nil, fmt.Errorf("repository %s: unsupported scheme %q", src.URL, u.Scheme)
}

// Load returns the chart archive of cv, from the cache or the repository, checked against
// the index's digest when it has one.
func (r *Repositories) Load(ctx context.Context, src Source, cv ChartVersion) (*Chart, error) {
	key := cv.URL + "@" + cv.Version + "@" + cv.Digest
	r.mu.Lock()
	if ch, ok := r.archives.get(key); ok {
		r.mu.Unlock()
		return ch, nil
	}
	call, waiting := r.inflight[key]
	if !waiting {
		call = &fetchCall{done: make(chan struct{})}
		r.inflight[key] = call
	}
	r.mu.Unlock()
	if waiting {
		select {
		case <-call.done:
			return call.chart, call.err
		case <-ctx.Done():
			return nil, fmt.Errorf("load chart %s %s: %w", cv.Name, cv.Version, ctx.Err())
		}
	}

	call.chart, call.err = r.fetchChart(ctx, src, cv)
	r.mu.Lock()
	delete(r.inflight, key)
	if call.err == nil {
		r.archives.add(key, call.chart)
	}
	r.mu.Unlock()
	close(call.done)
	return call.chart, call.err
}

func (r *Repositories) fetchChart(ctx context.Context, src Source, cv ChartVersion) (*Chart, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	u, err := url.Parse(cv.URL)
	if err != nil {
		return nil, fmt.Errorf("parse chart URL %q: %w", cv.URL, err)
	}
	var data []byte
	switch u.Scheme {
	case "http", "https":
		data, err = r.httpGet(src, cv.URL)
	case "s3":
		if r.opts.ObjectStore == nil {
			return nil, fmt.Errorf("chart %s: no S3 client configured", cv.URL)
		}
		data, err = r.opts.ObjectStore.Get(ctx, u.Host, strings.TrimPrefix(u.Path, "/"))
	case "oci":
		data, err = r.pullOCI(src, cv)
	default:
		err = fmt.Errorf("unsupported scheme %q", u.Scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch chart %s %s from %s: %w", cv.Name, cv.Version, cv.URL, err)
	}
	if cv.Digest != "" {
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, strings.TrimPrefix(cv.Digest, "sha256:")) {
			return nil, fmt.Errorf("chart %s %s from %s: digest %s does not match the index's %s", cv.Name, cv.Version, cv.URL, got, cv.Digest)
		}
	}
	ch, err := ChartFromArchive(data)
	if err != nil {
		return nil, fmt.Errorf("chart %s %s from %s: %w", cv.Name, cv.Version, cv.URL, err)
	}
	if ch.Name != cv.Name {
		return nil, fmt.Errorf("chart %s from %s is named %q inside", cv.Name, cv.URL, ch.Name)
	}
	return ch, nil
}

// httpGet fetches with Helm's HTTP getter. Credentials go only to the repository's own host.
func (r *Repositories) httpGet(src Source, href string) ([]byte, error) {
	opts := []getter.Option{
		getter.WithURL(src.URL),
		getter.WithTransport(r.transport),
		getter.WithTimeout(r.opts.Timeout),
	}
	if src.Username != "" || src.Password != "" {
		opts = append(opts, getter.WithBasicAuth(src.Username, src.Password))
	}
	if r.opts.UserAgent != "" {
		opts = append(opts, getter.WithUserAgent(r.opts.UserAgent))
	}
	// A getter keeps its options, so each fetch gets its own over the shared transport.
	g, err := getter.NewHTTPGetter(opts...)
	if err != nil {
		return nil, fmt.Errorf("http getter: %w", err)
	}
	buf, err := g.Get(href)
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// parseIndex picks the newest version of every chart of an index.yaml; archive URLs are made
// absolute against base.
func parseIndex(data []byte, base string) ([]ChartVersion, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("index of %s is empty", base)
	}
	var idx repo.IndexFile
	if err := yaml.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("parse index of %s: %w", base, err)
	}
	if idx.APIVersion == "" {
		return nil, fmt.Errorf("index of %s has no apiVersion", base)
	}
	var out []ChartVersion
	for name, versions := range idx.Entries {
		var best *repo.ChartVersion
		var bestV *semver.Version
		for _, cv := range versions {
			if cv == nil || cv.Metadata == nil || cv.Removed || len(cv.URLs) == 0 {
				continue
			}
			v, err := semver.NewVersion(cv.Version)
			if err != nil {
				continue
			}
			if bestV == nil || v.GreaterThan(bestV) {
				best, bestV = cv, v
			}
		}
		if best == nil {
			continue
		}
		u, err := repo.ResolveReferenceURL(base, best.URLs[0])
		if err != nil {
			return nil, fmt.Errorf("index of %s: chart %s %s: %w", base, name, best.Version, err)
		}
		out = append(out, ChartVersion{Name: name, Version: best.Version, Digest: best.Digest, URL: u})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// listS3 reads s3://bucket/prefix: its index.yaml when there is one (as the helm-s3 plugin
// keeps), else the chart archives listed under the prefix, named <chart>-<version>.tgz.
func (r *Repositories) listS3(ctx context.Context, u *url.URL) ([]ChartVersion, error) {
	if r.opts.ObjectStore == nil {
		return nil, fmt.Errorf("repository %s: no S3 client configured", u)
	}
	bucket, prefix := u.Host, strings.Trim(u.Path, "/")
	base := "s3://" + bucket + "/" + prefix
	data, err := r.opts.ObjectStore.Get(ctx, bucket, path.Join(prefix, "index.yaml"))
	if err == nil {
		return parseIndex(data, strings.TrimSuffix(base, "/"))
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read index of %s: %w", base, err)
	}
	listPrefix := prefix
	if listPrefix != "" {
		listPrefix += "/"
	}
	keys, err := r.opts.ObjectStore.List(ctx, bucket, listPrefix)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", base, err)
	}
	type best struct {
		v   *semver.Version
		raw string
		key string
	}
	newest := map[string]best{}
	for _, key := range keys {
		file := strings.TrimPrefix(key, listPrefix)
		if strings.Contains(file, "/") || !strings.HasSuffix(file, ".tgz") {
			continue
		}
		name, version, ok := splitArchiveName(strings.TrimSuffix(file, ".tgz"))
		if !ok {
			continue
		}
		v, _ := semver.NewVersion(version)
		if b, seen := newest[name]; !seen || v.GreaterThan(b.v) {
			newest[name] = best{v: v, raw: version, key: key}
		}
	}
	out := make([]ChartVersion, 0, len(newest))
	for name, b := range newest {
		out = append(out, ChartVersion{Name: name, Version: b.raw, URL: "s3://" + bucket + "/" + b.key})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// splitArchiveName splits "<chart>-<semver>" at the first dash followed by a valid version, so
// dashed chart names and pre-release versions both survive ("my-chart-1.0.0-rc.1").
func splitArchiveName(s string) (name, version string, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] != '-' || i == 0 || i+1 >= len(s) || s[i+1] < '0' || s[i+1] > '9' {
			continue
		}
		if _, err := semver.StrictNewVersion(s[i+1:]); err == nil {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}

// archiveCache is a byte-bounded LRU of loaded charts; callers hold Repositories.mu.
type archiveCache struct {
	max   int64
	size  int64
	order *list.List
	items map[string]*list.Element
}

type archiveItem struct {
	key   string
	chart *Chart
}

func newArchiveCache(max int64) *archiveCache {
	return &archiveCache{max: max, order: list.New(), items: map[string]*list.Element{}}
}

func (c *archiveCache) get(key string) (*Chart, bool) {
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*archiveItem).chart, true
}

func (c *archiveCache) add(key string, ch *Chart) {
	size := int64(len(ch.archive))
	if size > c.max {
		return
	}
	if el, ok := c.items[key]; ok {
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&archiveItem{key: key, chart: ch})
	c.size += size
	for c.size > c.max {
		el := c.order.Back()
		it := el.Value.(*archiveItem)
		c.order.Remove(el)
		delete(c.items, it.key)
		c.size -= int64(len(it.chart.archive))
	}
}
