package loadtest_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orbit-workbench/orbit-controller/pkg/loadtest"
)

func TestRunCountsRequestsErrorsAndOrdersLatencies(t *testing.T) {
	var n atomic.Int64
	res := loadtest.Run(t.Context(), 1000, 100*time.Millisecond, 8, func(context.Context) error {
		if n.Add(1)%10 == 0 {
			return errors.New("every tenth fails")
		}
		return nil
	})
	if res.Requests != 100 || res.Errors != 10 || len(res.Latencies) != 90 {
		t.Fatalf("requests %d errors %d latencies %d", res.Requests, res.Errors, len(res.Latencies))
	}
	for i := 1; i < len(res.Latencies); i++ {
		if res.Latencies[i] < res.Latencies[i-1] {
			t.Fatal("latencies not sorted")
		}
	}
	if res.Percentile(50) > res.Percentile(99) {
		t.Error("p50 above p99")
	}
}

func TestLatencyIncludesQueueingBehindSlowCalls(t *testing.T) {
	// One slot, calls of 5ms at 1000/s: later calls wait for their scheduled slot's
	// predecessors, and that wait must count.
	res := loadtest.Run(t.Context(), 1000, 20*time.Millisecond, 1, func(context.Context) error {
		time.Sleep(5 * time.Millisecond)
		return nil
	})
	if res.Percentile(100) < 50*time.Millisecond {
		t.Errorf("max latency %s hides the queueing (20 calls of 5ms through one slot)", res.Percentile(100))
	}
}

func TestServiceLatencyExcludesSendLag(t *testing.T) {
	res := loadtest.Run(t.Context(), 1000, 20*time.Millisecond, 1, func(context.Context) error {
		time.Sleep(5 * time.Millisecond)
		return nil
	})
	if res.ServicePercentile(100) > 20*time.Millisecond {
		t.Errorf("service latency max %s: each call takes 5ms", res.ServicePercentile(100))
	}
	if res.LagPercentile(100) < 40*time.Millisecond {
		t.Errorf("send lag max %s hides the queueing of 20 calls through one slot", res.LagPercentile(100))
	}
}
