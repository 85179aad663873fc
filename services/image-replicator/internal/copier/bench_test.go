package copier

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

const (
	benchImages  = 200
	benchLayers  = 3
	benchLayerSz = 4 << 10 // 4 KiB per layer
	benchWorkers = 4       // images in flight, like the replicator's workers
)

// BenchmarkCopy copies 200 distinct small multi-layer images between two
// loopback registries, once with this package's Copier and once with
// crane.Copy, and reports images/s for each. Every iteration copies into a
// fresh destination registry, so nothing is skipped as already present.
func BenchmarkCopy(b *testing.B) {
	src := newRegistry(b)
	refs := make([]string, benchImages)
	for i := range refs {
		img, err := random.Image(benchLayerSz, benchLayers)
		if err != nil {
			b.Fatal(err)
		}
		refs[i] = fmt.Sprintf("%s/bench/img-%03d:1", src, i)
		push(b, refs[i], img)
	}

	copier := New(Options{})
	run := func(b *testing.B, cp func(ctx context.Context, src, dst string) error) {
		b.Helper()
		for b.Loop() {
			b.StopTimer()
			dstSrv := httptest.NewServer(registry.New(registry.Logger(discardLogger())))
			dst := strings.TrimPrefix(dstSrv.URL, "http://")
			b.StartTimer()

			if err := copyAll(b.Context(), refs, src, dst, cp); err != nil {
				b.Fatal(err)
			}

			b.StopTimer()
			dstSrv.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(benchImages*b.N)/b.Elapsed().Seconds(), "images/s")
	}

	b.Run("copier", func(b *testing.B) {
		run(b, func(ctx context.Context, s, d string) error {
			_, err := copier.Copy(ctx, s, d)
			return err
		})
	})
	b.Run("crane", func(b *testing.B) {
		run(b, func(ctx context.Context, s, d string) error {
			return crane.Copy(s, d, crane.WithContext(ctx))
		})
	})
}

// copyAll copies every ref from src to dst with benchWorkers goroutines and
// returns the first error.
func copyAll(ctx context.Context, refs []string, src, dst string, cp func(ctx context.Context, src, dst string) error) error {
	work := make(chan string)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range benchWorkers {
		wg.Go(func() {
			for ref := range work {
				if err := cp(ctx, ref, dst+strings.TrimPrefix(ref, src)); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	for _, ref := range refs {
		work <- ref
	}
	close(work)
	wg.Wait()
	return first
}
