// Package loadtest drives an open-loop load for benchmarks: requests start at a fixed rate
// whatever the latency of earlier ones (a closed loop would hide queueing), and each latency
// is recorded from its scheduled start, so a stall shows up in the tail.
package loadtest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Result summarises one run.
type Result struct {
	Requests  int
	Errors    int
	FirstErr  error
	Latencies []time.Duration // sorted
	Elapsed   time.Duration
}

// Percentile returns the p-th percentile (0-100) latency.
func (r Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.Latencies)-1) * p / 100)
	return r.Latencies[i]
}

// String is a one-line summary.
func (r Result) String() string {
	return fmt.Sprintf("%d requests in %s, %d errors, p50 %s, p99 %s, max %s",
		r.Requests, r.Elapsed.Round(time.Millisecond), r.Errors,
		r.Percentile(50), r.Percentile(99), r.Percentile(100))
}

// Run calls do at rate per second for duration, with at most concurrency calls in flight.
func Run(ctx context.Context, rate int, duration time.Duration, concurrency int, do func(ctx context.Context) error) Result {
	total := int(float64(rate) * duration.Seconds())
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, 0, total)
	var mu sync.Mutex
	var res Result
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range total {
		scheduled := start.Add(time.Duration(i) * interval)
		if d := time.Until(scheduled); d > 0 {
			select {
			case <-ctx.Done():
				i = total
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := do(ctx)
			took := time.Since(scheduled)
			mu.Lock()
			defer mu.Unlock()
			res.Requests++
			if err != nil {
				res.Errors++
				if res.FirstErr == nil {
					res.FirstErr = err
				}
				return
			}
			lat = append(lat, took)
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(lat)
	res.Latencies = lat
	return res
}
