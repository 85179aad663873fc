package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/orbit-workbench/orbit-controller/pkg/metrics"
)

func typesUID(s string) types.UID { return types.UID(s) }

// Handler decides one admission request. It must not panic and should not fail: a mutating
// handler that cannot compute a change answers Allowed with a warning. An error is answered
// with a 500, which the API server treats per the webhook's failurePolicy.
type Handler func(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error)

// Metrics are the request metrics of one webhook server.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers orbit_<service>_webhook_* on reg.
func NewMetrics(reg prometheus.Registerer, service string) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: metrics.Subsystem(service),
			Name: "webhook_requests_total", Help: "Admission requests by path and outcome (allowed, patched, denied, bad_request, error).",
		}, []string{"path", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metrics.Namespace, Subsystem: metrics.Subsystem(service),
			Name: "webhook_request_duration_seconds", Help: "Admission request handling time, decode to encode.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"path", "outcome"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

func (m *Metrics) observe(path, outcome string, start time.Time) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(path, outcome).Inc()
	m.duration.WithLabelValues(path, outcome).Observe(time.Since(start).Seconds())
}

// Router is the chi router of a webhook server with /health already mounted.
type Router struct {
	chi.Router
	log          zerolog.Logger
	metrics      *Metrics
	maxBodyBytes int64
}

// NewRouter returns a router; metrics may be nil.
func NewRouter(log zerolog.Logger, m *Metrics) *Router {
	r := chi.NewRouter()
	r.Get("/health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return &Router{Router: r, log: log, metrics: m, maxBodyBytes: DefaultMaxBodyBytes}
}

// SetMaxBodyBytes changes the request size limit.
func (r *Router) SetMaxBodyBytes(n int64) { r.maxBodyBytes = n }

// Admit mounts an admission handler on path.
func (r *Router) Admit(path string, h Handler) {
	r.Post(path, r.admissionHandler(path, h))
}

func (r *Router) admissionHandler(path string, h Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		review, err := DecodeReview(req, r.maxBodyBytes)
		if err != nil {
			r.metrics.observe(path, "bad_request", start)
			r.log.Warn().Err(err).Str("path", path).Str("remote", req.RemoteAddr).Msg("malformed admission request")
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ctx := r.log.With().Str("uid", string(review.Request.UID)).Logger().WithContext(req.Context())
		resp, err := safeCall(ctx, h, review.Request)
		if err != nil {
			r.metrics.observe(path, "error", start)
			zerolog.Ctx(ctx).Error().Err(err).Str("path", path).Msg("admission handler failed")
			http.Error(w, "admission handler failed: "+err.Error(), http.StatusInternalServerError)
			return
		}
		body, err := encodeReview(string(review.Request.UID), resp)
		if err != nil {
			r.metrics.observe(path, "error", start)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
		r.metrics.observe(path, outcome(resp), start)
	}
}

func outcome(resp *admissionv1.AdmissionResponse) string {
	switch {
	case !resp.Allowed:
		return "denied"
	case len(resp.Patch) > 0:
		return "patched"
	default:
		return "allowed"
	}
}

// safeCall turns a handler panic into an error: one bad request never takes the server down.
func safeCall(ctx context.Context, h Handler, req *admissionv1.AdmissionRequest) (resp *admissionv1.AdmissionResponse, err error) {
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, fmt.Errorf("handler panic: %v", p)
		}
	}()
	return h(ctx, req)
}

// CertSource hands out the serving certificate for each TLS handshake, so a renewed
// certificate is used from the next connection on without a restart.
type CertSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

// TLSConfig is the server TLS configuration: TLS 1.2+, certificate from src.
func TLSConfig(src CertSource) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: src.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}

// Serve serves h over TLS on ln until ctx ends, then shuts down gracefully within timeout.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, src CertSource, timeout time.Duration) error {
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         TLSConfig(src),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          nil,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve TLS on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down TLS listener: %w", err)
	}
	return nil
}
