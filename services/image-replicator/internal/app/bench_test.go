package app_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
)

const (
	benchImages  = 200
	benchLayers  = 3
	benchWorkers = 4 // --workers, and crane's concurrency
)

// BenchmarkReplicatorThroughput: 200 distinct small multi-layer images replicated with the
// copy backend between loopback registries, end to end through the controller — the
// ImageReplications created on the real API server, until every one is Complete — and, in
// the same run, crane.Copy of the same images at the same concurrency into a fresh registry.
// Reports images/s for both and their ratio.
//
// Two sizes: 3×4 KiB layers measure the controller's own cost per image (API round trips
// against a copy of a few milliseconds), 3×256 KiB layers a copy closer to a real small image.
func BenchmarkReplicatorThroughput(b *testing.B) {
	if env == nil {
		b.Skip("no control plane")
	}
	for _, size := range []int64{4 << 10, 256 << 10} {
		b.Run(fmt.Sprintf("layers=%dx%dKiB", benchLayers, size>>10), func(b *testing.B) { benchThroughput(b, size) })
	}
}

func benchThroughput(b *testing.B, layerSize int64) {
	src := newRegistry(b, nil)
	refs := make([]string, benchImages)
	for i := range refs {
		refs[i] = fmt.Sprintf("%s/bench/img-%03d:1", src, i)
		pushRandom(b, refs[i], benchLayers, layerSize)
	}
	mirrorRef := func(dst string, i int) string { return dst + "/orbit-dev" + strings.TrimPrefix(refs[i], src) }

	var live, preCreated, craneTime time.Duration
	for b.Loop() {
		live += controllerRun(b, refs, mirrorRef, false)
		preCreated += controllerRun(b, refs, mirrorRef, true)

		dst := newRegistry(b, nil)
		start := time.Now()
		parallel(benchWorkers, len(refs), func(i int) {
			if err := crane.Copy(refs[i], mirrorRef(dst, i), crane.WithContext(b.Context())); err != nil {
				b.Error(err)
			}
		})
		craneTime += time.Since(start)
	}
	rate := func(d time.Duration) float64 { return float64(benchImages*b.N) / d.Seconds() }
	b.ReportMetric(rate(live), "controller-images/s")
	b.ReportMetric(rate(craneTime), "crane-images/s")
	b.ReportMetric(rate(live)/rate(craneTime), "ratio")
	b.ReportMetric(rate(preCreated), "precreated-images/s")
}

// controllerRun replicates refs through a fresh replicator into a fresh registry and returns
// the time until every ImageReplication is Complete: from the first create on, or, with
// preCreate, from the replicator's start with all of them already stored (the controller's
// own cost without the creates').
func controllerRun(b *testing.B, refs []string, mirrorRef func(string, int) string, preCreate bool) time.Duration {
	b.Helper()
	ns := env.Namespace(b, "bench", nil)
	// The API server's namespace admission looks a namespace up live (slowly) until its
	// cache has seen it: let that pass, as it has for a real orbit-system.
	time.Sleep(2 * time.Second)
	dst := newRegistry(b, nil)
	irs := replications(b, ns.Name)
	w, err := irs.Watch(b.Context(), metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	create := func() {
		parallel(benchWorkers, len(refs), func(i int) {
			createReplication(b, irs, fmt.Sprintf("img-%03d", i), refs[i], mirrorRef(dst, i))
		})
	}
	opts := copyOptions()
	opts.Watcher.Workers = benchWorkers
	var start time.Time
	if preCreate {
		create()
		start = time.Now()
		startReplicator(b, opts, ns.Name)
	} else {
		startReplicator(b, opts, ns.Name)
		start = time.Now()
		create()
	}
	waitComplete(b, w, len(refs))
	return time.Since(start)
}

// parallel calls f(0…n-1) on workers goroutines.
func parallel(workers, n int, f func(i int)) {
	work := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range work {
				f(i)
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
}

// waitComplete reads w until n ImageReplications are Complete; a Failed one fails the run.
func waitComplete(b *testing.B, w watch.Interface, n int) {
	b.Helper()
	complete := map[string]bool{}
	timeout := time.After(5 * time.Minute)
	for len(complete) < n {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				b.Fatal("watch closed")
			}
			ir, ok := ev.Object.(*orbitv1.ImageReplication)
			if !ok {
				continue
			}
			switch ir.Status.Phase {
			case orbitv1.PhaseComplete:
				complete[ir.Name] = true
			case orbitv1.PhaseFailed:
				b.Fatalf("%s failed: %s", ir.Name, ir.Status.Message)
			}
		case <-timeout:
			b.Fatalf("%d of %d complete after 5 minutes", len(complete), n)
		}
	}
}
