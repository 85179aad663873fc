// Package awstest is a loopback stand-in for AWS JSON 1.1 services
// (CodeBuild, ECR), for tests that drive the real aws-sdk-go-v2 clients:
// requests are routed by their X-Amz-Target header, bodies are JSON, and
// errors are {"__type": code, "message": …} with status 400, as AWS sends them.
package awstest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Region is the region the test clients use.
const Region = "us-west-2"

// Handler answers one operation: the status code and a value to send as JSON.
type Handler func(body map[string]any) (status int, response any)

// Call is one request the server received.
type Call struct {
	Target string
	Body   map[string]any
	// Raw is the request body as sent.
	Raw []byte
}

// Server serves AWS JSON 1.1 operations on loopback.
type Server struct {
	*httptest.Server
	t testing.TB

	mu       sync.Mutex
	handlers map[string]Handler
	calls    []Call
}

// New starts a Server that t cleans up.
func New(t testing.TB) *Server {
	s := &Server{t: t, handlers: map[string]Handler{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// Handle sets the handler of an operation, e.g. "CodeBuild_20161006.StartBuild".
func (s *Server) Handle(target string, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[target] = h
}

// Calls returns the requests received for target, in order.
func (s *Server) Calls(target string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if c.Target == target {
			out = append(out, c)
		}
	}
	return out
}

// Error is a Handler result for an AWS error.
func Error(code, message string) (int, any) {
	return http.StatusBadRequest, map[string]string{"__type": code, "message": message}
}

// Config is an aws.Config for clients of s: static credentials, Region, no
// retries (a test sees every error at once), and the server's HTTP client.
// Point a client at s with its BaseEndpoint option set to s.URL.
func (s *Server) Config() aws.Config {
	return aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		Retryer:     func() aws.Retryer { return aws.NopRetryer{} },
		HTTPClient:  s.Client(),
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	body := map[string]any{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			s.t.Errorf("%s: request body is not JSON: %v", target, err)
		}
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		s.t.Errorf("%s: Content-Type %q, want application/x-amz-json-1.1", target, ct)
	}
	if r.Header.Get("Authorization") == "" {
		s.t.Errorf("%s: request is not signed", target)
	}
	s.mu.Lock()
	s.calls = append(s.calls, Call{Target: target, Body: body, Raw: raw})
	h := s.handlers[target]
	s.mu.Unlock()

	status, resp := http.StatusBadRequest, any(map[string]string{"__type": "UnknownOperationException", "message": target})
	if h != nil {
		status, resp = h(body)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(resp); err != nil {
		s.t.Errorf("%s: encode response: %v", target, err)
	}
}
