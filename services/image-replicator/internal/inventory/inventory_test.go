package inventory

import (
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/replicate"
)

func TestParse(t *testing.T) {
	f, err := os.Open("testdata/images.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Line: 2, Source: "nginx:1.19"},
		{Line: 3, Source: "quay.io/jetstack/cert-manager-controller:v1.3.2"},
		{Line: 5, Source: "public.ecr.aws/nginx/nginx:latest"},
		{Line: 7, Source: "123456789012.dkr.ecr.us-west-2.amazonaws.com/orbit-dev/foo:1"},
		{Line: 8, Source: "ghcr.io/org/tool:v1", Destination: "mirror.example.com/custom/tool:v1"},
		{Line: 9, Source: "nginx:1.19"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse =\n%+v\nwant\n%+v", got, want)
	}
	if _, err := Parse(strings.NewReader("a b c\n")); err == nil {
		t.Error("three fields accepted")
	}
	if got, err := Parse(strings.NewReader("")); err != nil || len(got) != 0 {
		t.Errorf("empty file: %v, %v", got, err)
	}
}

// fakeBackend replicates into an in-memory mirror; sources in fail fail, and
// sources in async finish on the first poll.
type fakeBackend struct {
	mu     sync.Mutex
	mirror map[string]bool
	fail   map[string]bool
	async  map[string]bool
	starts map[string]int
	ids    map[string]string
}

func newFake() *fakeBackend {
	return &fakeBackend{mirror: map[string]bool{}, fail: map[string]bool{}, async: map[string]bool{}, starts: map[string]int{}, ids: map[string]string{}}
}

func (f *fakeBackend) Start(_ context.Context, req replicate.Request) (replicate.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts[req.Source]++
	if f.fail[req.Source] {
		return replicate.Status{Done: true, Message: "pull failed"}, nil
	}
	if f.async[req.Source] {
		id := "build-" + req.Source
		f.ids[id] = req.Destination
		return replicate.Status{ID: id}, nil
	}
	f.mirror[req.Destination] = true
	return replicate.Status{Done: true, Succeeded: true}, nil
}

func (f *fakeBackend) Poll(_ context.Context, id string) (replicate.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mirror[f.ids[id]] = true
	return replicate.Status{ID: id, Done: true, Succeeded: true}, nil
}

func (f *fakeBackend) Has(_ context.Context, ref string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.Contains(ref, "checkfails") {
		return false, errors.New("AccessDenied")
	}
	return f.mirror[ref], nil
}

const mirror = "123456789012.dkr.ecr.us-west-2.amazonaws.com"

// mapper stands in for mirror.Desired: images already in the mirror stay.
func mapper(src string) (string, bool, error) {
	if strings.HasPrefix(src, mirror+"/") {
		return src, false, nil
	}
	if strings.Contains(src, "INVALID") {
		return "", false, errors.New("invalid reference")
	}
	return mirror + "/orbit-dev/" + src, true, nil
}

func TestRun(t *testing.T) {
	b := newFake()
	b.mirror[mirror+"/orbit-dev/present:1"] = true
	b.fail["broken:1"] = true
	b.async["slow:1"] = true
	entries := []Entry{
		{Line: 1, Source: "nginx:1.19"},
		{Line: 2, Source: "present:1"},
		{Line: 3, Source: "broken:1"},
		{Line: 4, Source: mirror + "/orbit-dev/foo:1"},
		{Line: 5, Source: "nginx:1.19"},
		{Line: 6, Source: "slow:1"},
		{Line: 7, Source: "INVALID"},
		{Line: 8, Source: "ghcr.io/o/t:1", Destination: "mirror.example.com/t:1"},
		{Line: 9, Source: "checkfails:1"},
	}
	r := &Runner{Backend: b, Checker: b, Map: mapper, PollInterval: time.Millisecond, Concurrency: 3}
	s, err := r.Run(t.Context(), entries)
	if err == nil {
		t.Fatal("Run succeeded with failed images")
	}
	for _, want := range []string{"3 of 9 images failed", "line 3 broken:1: pull failed", "line 7 INVALID: invalid reference", "line 9 checkfails:1: AccessDenied"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	wantCounts := Summary{Total: 9, Replicated: 3, Present: 1, Unmapped: 1, Duplicate: 1, Failed: 3}
	s.Results = nil
	if !reflect.DeepEqual(s, wantCounts) {
		t.Errorf("summary %+v, want %+v", s, wantCounts)
	}
	if got := s.String(); got != "9 images: 3 replicated, 1 already present, 1 not mirrored, 1 duplicate, 3 failed" {
		t.Errorf("String() = %q", got)
	}
	// Replicated once each; never for the present or unmapped images.
	for src, want := range map[string]int{"nginx:1.19": 1, "slow:1": 1, "ghcr.io/o/t:1": 1, "present:1": 0, mirror + "/orbit-dev/foo:1": 0} {
		if b.starts[src] != want {
			t.Errorf("%s started %d times, want %d", src, b.starts[src], want)
		}
	}
	for _, dst := range []string{mirror + "/orbit-dev/nginx:1.19", mirror + "/orbit-dev/slow:1", "mirror.example.com/t:1"} {
		if !b.mirror[dst] {
			t.Errorf("%s not in the mirror", dst)
		}
	}

	// A second run finds everything that worked already present.
	s, err = (&Runner{Backend: b, Checker: b, Map: mapper, PollInterval: time.Millisecond}).Run(t.Context(), entries[:2])
	if err != nil || s.Present != 2 || s.Replicated != 0 {
		t.Errorf("second run: %+v, %v", s, err)
	}
}

func TestRunAllGood(t *testing.T) {
	b := newFake()
	s, err := (&Runner{Backend: b, Map: mapper}).Run(t.Context(), []Entry{{Line: 1, Source: "a:1"}, {Line: 2, Source: "b:1"}})
	if err != nil || s.Replicated != 2 || s.Total != 2 {
		t.Errorf("Run = %+v, %v", s, err)
	}
	if _, err := (&Runner{}).Run(t.Context(), nil); err == nil {
		t.Error("Run without a backend succeeded")
	}
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	b := newFake()
	b.async["slow:1"] = true
	s, err := (&Runner{Backend: b, Map: mapper, PollInterval: time.Hour}).Run(ctx, []Entry{{Line: 1, Source: "slow:1"}, {Line: 2, Source: "slow:2"}})
	if err == nil || s.Failed != 2 {
		t.Errorf("cancelled run: %+v, %v; want both failed", s, err)
	}
}
