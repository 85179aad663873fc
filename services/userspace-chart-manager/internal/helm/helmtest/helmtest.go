// Package helmtest serves chart repositories on loopback for tests: an http(s)-style chart
// repository (index.yaml and archives), an OCI registry (go-containerregistry's, charts
// pushed with Helm's registry client) and a minimal S3 (GetObject and ListObjectsV2,
// path-style), all from charts packaged from a directory by the test itself.
package helmtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	helmregistry "helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"
	"sigs.k8s.io/yaml"
)

// Archive is a packaged chart.
type Archive struct {
	Name    string
	Version string
	Data    []byte
}

// File is the archive's conventional file name.
func (a Archive) File() string { return a.Name + "-" + a.Version + ".tgz" }

// Digest is the archive's sha256, hex.
func (a Archive) Digest() string {
	sum := sha256.Sum256(a.Data)
	return hex.EncodeToString(sum[:])
}

// Package packages the chart in dir, with its version replaced when version is not empty.
func Package(t testing.TB, dir, version string) Archive {
	t.Helper()
	ch, err := loader.LoadDir(dir)
	if err != nil {
		t.Fatalf("load chart %s: %v", dir, err)
	}
	if version != "" {
		ch.Metadata.Version = version
	}
	out := t.TempDir()
	path, err := chartutil.Save(ch, out)
	if err != nil {
		t.Fatalf("package chart %s: %v", dir, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read packaged chart: %v", err)
	}
	return Archive{Name: ch.Name(), Version: ch.Metadata.Version, Data: data}
}

// WriteChart writes a chart directory (Chart.yaml and the given templates) and returns it.
func WriteChart(t testing.TB, name, version string, templates map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(filepath.Join(dir, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	meta := fmt.Sprintf("apiVersion: v2\nname: %s\nversion: %s\ntype: application\n", name, version)
	if err := os.WriteFile(filepath.Join(dir, "Chart.yaml"), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
	for file, body := range templates {
		if err := os.WriteFile(filepath.Join(dir, "templates", file), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Index builds an index.yaml listing the archives; URLs are relative (the file name) when
// baseURL is empty.
func Index(t testing.TB, archives []Archive, baseURL string) []byte {
	t.Helper()
	idx := repo.NewIndexFile()
	for _, a := range archives {
		ch, err := loader.LoadArchive(strings.NewReader(string(a.Data)))
		if err != nil {
			t.Fatalf("load archive %s: %v", a.File(), err)
		}
		if err := idx.MustAdd(ch.Metadata, a.File(), baseURL, "sha256:"+a.Digest()); err != nil {
			t.Fatalf("index %s: %v", a.File(), err)
		}
	}
	idx.SortEntries()
	data, err := yaml.Marshal(idx)
	if err != nil {
		t.Fatalf("marshal index: %v", err)
	}
	return data
}

// Repo is an HTTP chart repository on loopback whose contents a test can change.
type Repo struct {
	URL string
	t   testing.TB

	mu       sync.Mutex
	archives []Archive
	requests map[string]int
}

// NewRepo serves the archives until the test ends.
func NewRepo(t testing.TB, archives ...Archive) *Repo {
	r := &Repo{t: t, archives: archives, requests: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// Set replaces the repository's contents.
func (r *Repo) Set(archives ...Archive) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.archives = archives
}

// Requests counts the requests for one path (e.g. /index.yaml).
func (r *Repo) Requests(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests[path]
}

func (r *Repo) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.requests[req.URL.Path]++
	archives := append([]Archive(nil), r.archives...)
	r.mu.Unlock()
	if req.URL.Path == "/index.yaml" {
		w.Header().Set("Content-Type", "application/x-yaml")
		_, _ = w.Write(Index(r.t, archives, ""))
		return
	}
	for _, a := range archives {
		if req.URL.Path == "/"+a.File() {
			w.Header().Set("Content-Type", "application/gzip")
			_, _ = w.Write(a.Data)
			return
		}
	}
	http.NotFound(w, req)
}

// Registry is an OCI registry on loopback, spoken to over plain HTTP.
type Registry struct {
	// Host is host:port.
	Host   string
	client *helmregistry.Client
}

// NewRegistry serves an empty registry until the test ends.
func NewRegistry(t testing.TB) *Registry {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	c, err := helmregistry.NewClient(helmregistry.ClientOptPlainHTTP(), helmregistry.ClientOptCredentialsFile(filepath.Join(t.TempDir(), "config.json")))
	if err != nil {
		t.Fatalf("registry client: %v", err)
	}
	return &Registry{Host: strings.TrimPrefix(srv.URL, "http://"), client: c}
}

// Push pushes an archive as <Host>/<repoPath>/<name>:<version>.
func (r *Registry) Push(t testing.TB, repoPath string, a Archive) {
	t.Helper()
	ref := fmt.Sprintf("%s/%s/%s:%s", r.Host, strings.Trim(repoPath, "/"), a.Name, a.Version)
	if _, err := r.client.Push(a.Data, ref); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// S3 is a minimal S3 on loopback: path-style GetObject and ListObjectsV2 over an in-memory
// set of buckets, answering as S3's REST API does (XML listings, NoSuchKey errors).
type S3 struct {
	Endpoint string

	mu      sync.Mutex
	objects map[string][]byte // "bucket/key"
	gets    map[string]int
}

// NewS3 serves empty buckets until the test ends.
func NewS3(t testing.TB) *S3 {
	s := &S3{objects: map[string][]byte{}, gets: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.Endpoint = srv.URL
	return s
}

// Put stores an object.
func (s *S3) Put(bucket, key string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[bucket+"/"+key] = data
}

// Gets counts GetObject requests for one object.
func (s *S3) Gets(bucket, key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets[bucket+"/"+key]
}

type listResult struct {
	XMLName     xml.Name     `xml:"http://s3.amazonaws.com/doc/2006-03-01/ ListBucketResult"`
	Name        string       `xml:"Name"`
	Prefix      string       `xml:"Prefix"`
	KeyCount    int          `xml:"KeyCount"`
	MaxKeys     int          `xml:"MaxKeys"`
	IsTruncated bool         `xml:"IsTruncated"`
	Contents    []listObject `xml:"Contents"`
}

type listObject struct {
	Key          string `xml:"Key"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int    `xml:"Size"`
	StorageClass string `xml:"StorageClass"`
}

type s3Error struct {
	XMLName xml.Name `xml:"Error"`
	Code    string   `xml:"Code"`
	Message string   `xml:"Message"`
	Key     string   `xml:"Key,omitempty"`
}

func (s *S3) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet {
		writeS3Error(w, http.StatusNotImplemented, "NotImplemented", req.Method+" is not implemented", "")
		return
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(req.URL.Path, "/"), "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	if key == "" && req.URL.Query().Get("list-type") == "2" {
		prefix := req.URL.Query().Get("prefix")
		res := listResult{Name: bucket, Prefix: prefix, MaxKeys: 1000}
		var keys []string
		for k := range s.objects {
			b, objKey, _ := strings.Cut(k, "/")
			if b == bucket && strings.HasPrefix(objKey, prefix) {
				keys = append(keys, objKey)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			data := s.objects[bucket+"/"+k]
			res.Contents = append(res.Contents, listObject{
				Key: k, Size: len(data), ETag: `"` + etag(data) + `"`, StorageClass: "STANDARD",
				LastModified: time.Now().UTC().Format(time.RFC3339),
			})
		}
		res.KeyCount = len(res.Contents)
		w.Header().Set("Content-Type", "application/xml")
		_, _ = w.Write([]byte(xml.Header))
		_ = xml.NewEncoder(w).Encode(res)
		return
	}
	s.gets[bucket+"/"+key]++
	data, ok := s.objects[bucket+"/"+key]
	if !ok {
		writeS3Error(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.", key)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	w.Header().Set("ETag", `"`+etag(data)+`"`)
	w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
	_, _ = w.Write(data)
}

func writeS3Error(w http.ResponseWriter, status int, code, msg, key string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(s3Error{Code: code, Message: msg, Key: key})
}

func etag(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16])
}
