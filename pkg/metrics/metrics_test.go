package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orbit-workbench/orbit-controller/pkg/metrics"
)

func TestSum(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "orbit_test_total"}, []string{"path", "outcome"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "orbit_test_depth"})
	reg.MustRegister(c, g)
	c.WithLabelValues("/a", "ok").Add(2)
	c.WithLabelValues("/a", "error").Add(3)
	c.WithLabelValues("/b", "ok").Add(5)
	g.Set(4)
	cases := []struct {
		name   string
		metric string
		labels []string
		want   float64
	}{
		{"every series", "orbit_test_total", nil, 10},
		{"by one label", "orbit_test_total", []string{"outcome", "ok"}, 7},
		{"by two labels", "orbit_test_total", []string{"path", "/a", "outcome", "error"}, 3},
		{"no match", "orbit_test_total", []string{"path", "/c"}, 0},
		{"gauge", "orbit_test_depth", nil, 4},
		{"unknown metric", "orbit_nope", nil, 0},
	}
	for _, tc := range cases {
		got, err := metrics.Sum(reg, tc.metric, tc.labels...)
		if err != nil || got != tc.want {
			t.Errorf("%s: Sum = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if _, err := metrics.Sum(reg, "orbit_test_total", "path"); err == nil {
		t.Error("odd label list accepted")
	}
}
