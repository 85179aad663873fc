// Package health serves /healthz and /readyz from named checks.
package health

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
)

// Check reports nil when the thing it checks is fine.
type Check func(ctx context.Context) error

// Checks holds the liveness and readiness checks of one process.
type Checks struct {
	mu        sync.RWMutex
	liveness  map[string]Check
	readiness map[string]Check
}

// NewChecks returns an empty set: a process with no checks is live and ready.
func NewChecks() *Checks {
	return &Checks{liveness: map[string]Check{}, readiness: map[string]Check{}}
}

// AddLiveness registers a check for /healthz.
func (c *Checks) AddLiveness(name string, check Check) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.liveness[name] = check
}

// AddReadiness registers a check for /readyz.
func (c *Checks) AddReadiness(name string, check Check) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readiness[name] = check
}

// Ready runs the readiness checks.
func (c *Checks) Ready(ctx context.Context) error { return c.run(ctx, c.readiness) }

// Live runs the liveness checks.
func (c *Checks) Live(ctx context.Context) error { return c.run(ctx, c.liveness) }

func (c *Checks) run(ctx context.Context, checks map[string]Check) error {
	c.mu.RLock()
	names := make([]string, 0, len(checks))
	for name := range checks {
		names = append(names, name)
	}
	c.mu.RUnlock()
	sort.Strings(names)
	var failed []string
	for _, name := range names {
		c.mu.RLock()
		check := checks[name]
		c.mu.RUnlock()
		if err := check(ctx); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", name, err))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s", strings.Join(failed, "; "))
	}
	return nil
}

// LivenessHandler serves /healthz.
func (c *Checks) LivenessHandler() http.Handler { return handler(c.Live) }

// ReadinessHandler serves /readyz.
func (c *Checks) ReadinessHandler() http.Handler { return handler(c.Ready) }

func handler(run func(context.Context) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := run(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ok: %v\n", err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
}
