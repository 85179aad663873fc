package chartmanager

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orbit-workbench/orbit-controller/pkg/metrics"
)

// Failure operations (the label of the failures counter).
const (
	opInstall     = "install"
	opUninstall   = "uninstall"
	opRepository  = "repository"
	opTeamContext = "teamContext"
	opTeardown    = "teamTeardown"
)

type serviceMetrics struct {
	installs       prometheus.Counter
	uninstalls     prometheus.Counter
	failures       *prometheus.CounterVec
	installSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *serviceMetrics {
	sub := metrics.Subsystem(Name)
	m := &serviceMetrics{
		installs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "installs_total",
			Help: "Releases installed.",
		}),
		uninstalls: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "uninstalls_total",
			Help: "Releases uninstalled.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "failures_total",
			Help: "Failures by operation (install, uninstall, repository, teamContext, teamTeardown).",
		}, []string{"operation"}),
		installSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "install_duration_seconds",
			Help:    "Time to install one release (chart already loaded).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
	}
	reg.MustRegister(m.installs, m.uninstalls, m.failures, m.installSeconds)
	for _, op := range []string{opInstall, opUninstall, opRepository, opTeamContext, opTeardown} {
		m.failures.WithLabelValues(op)
	}
	return m
}
