// Package metrics creates the Prometheus registry a service owns (never the global one).
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric name: orbit_<service>_<thing>_<unit>.
const Namespace = "orbit"

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler serves the registry in the Prometheus exposition format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// Subsystem turns a service name into a metric subsystem: pod-modifier → pod_modifier.
func Subsystem(service string) string {
	out := []byte(service)
	for i, c := range out {
		if c == '-' || c == '.' {
			out[i] = '_'
		}
	}
	return string(out)
}
