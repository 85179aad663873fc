// Package loadtest drives an open-loop load for benchmarks: requests start at a fixed rate
// whatever the latency of earlier ones (a closed loop would hide queueing). Each request gets
// two figures: Latencies from its scheduled start, so a stall anywhere — the server, the
// concurrency limit, or the generator's own timer waking late — shows up in the tail; and
// ServiceLatencies from the moment it was actually sent, which is what the server and the
// network cost. SendLag (actual minus scheduled send) tells the two apart: on a 2-core machine
// shared with the server, Go's timers alone wake about a millisecond late.
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
	Latencies []time.Duration // from the scheduled start, sorted
	// ServiceLatencies are measured from the actual send, sorted.
	ServiceLatencies []time.Duration
	// SendLag is how late each request left, sorted.
	SendLag []time.Duration
	Elapsed time.Duration
}

// Percentile returns the p-th percentile (0-100) latency from the scheduled start.
func (r Result) Percentile(p float64) time.Duration { return percentile(r.Latencies, p) }

// ServicePercentile returns the p-th percentile latency from the actual send.
func (r Result) ServicePercentile(p float64) time.Duration { return percentile(r.ServiceLatencies, p) }

// LagPercentile returns the p-th percentile of how late requests were sent.
func (r Result) LagPercentile(p float64) time.Duration { return percentile(r.SendLag, p) }

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(float64(len(sorted)-1)*p/100)]
}

// String is a one-line summary.
func (r Result) String() string {
	return fmt.Sprintf("%d requests in %s, %d errors, p50 %s, p99 %s, max %s (from send: p50 %s, p99 %s; send lag p99 %s)",
		r.Requests, r.Elapsed.Round(time.Millisecond), r.Errors,
		r.Percentile(50), r.Percentile(99), r.Percentile(100),
		r.ServicePercentile(50), r.ServicePercentile(99), r.LagPercentile(99))
}

// Run calls do at rate per second for duration, with at most concurrency calls in flight.
func Run(ctx context.Context, rate int, duration time.Duration, concurrency int, do func(ctx context.Context) error) Result {
	total := int(float64(rate) * duration.Seconds())
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, 0, total)
	svc := make([]time.Duration, 0, total)
	lag := make([]time.Duration, 0, total)
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
			sent := time.Now()
			err := do(ctx)
			done := time.Now()
			took, served := done.Sub(scheduled), done.Sub(sent)
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
			svc = append(svc, served)
			lag = append(lag, sent.Sub(scheduled))
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(lat)
	slices.Sort(svc)
	slices.Sort(lag)
	res.Latencies, res.ServiceLatencies, res.SendLag = lat, svc, lag
	return res
}
