package platform

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Report prints each step as it runs and a summary table at the end.
type Report struct {
	out   io.Writer
	start time.Time
	steps []stepResult
}

type stepResult struct {
	name   string
	took   time.Duration
	ok     bool
	detail string
}

func NewReport(out io.Writer) *Report { return &Report{out: out, start: time.Now()} }

// Step runs fn, printing the step's name, what it checked and how long it took.
func (r *Report) Step(name string, fn func() (string, error)) bool {
	fmt.Fprintf(r.out, "▶ %s\n", name)
	start := time.Now()
	detail, err := fn()
	took := time.Since(start)
	res := stepResult{name: name, took: took, ok: err == nil, detail: detail}
	if err != nil {
		res.detail = err.Error()
		fmt.Fprintf(r.out, "  ✗ FAILED after %s: %v\n", took.Round(time.Millisecond), err)
	} else {
		fmt.Fprintf(r.out, "  ✓ %s (%s)\n", detail, took.Round(time.Millisecond))
	}
	r.steps = append(r.steps, res)
	return err == nil
}

// Info prints a line of context.
func (r *Report) Info(format string, args ...any) {
	fmt.Fprintf(r.out, "  · "+format+"\n", args...)
}

// Fail records an error outside any step.
func (r *Report) Fail(err error) {
	r.steps = append(r.steps, stepResult{name: "platform", ok: false, detail: err.Error()})
	fmt.Fprintf(r.out, "  ✗ %v\n", err)
}

// Summary prints the table and names the first failed step.
func (r *Report) Summary() {
	width := 4
	for _, s := range r.steps {
		width = max(width, len(s.name))
	}
	fmt.Fprintf(r.out, "\n%-*s  %-6s  %9s\n%s\n", width, "step", "result", "time", strings.Repeat("─", width+19))
	failed := ""
	for _, s := range r.steps {
		result := "ok"
		if !s.ok {
			result = "FAILED"
			if failed == "" {
				failed = s.name + ": " + s.detail
			}
		}
		fmt.Fprintf(r.out, "%-*s  %-6s  %9s\n", width, s.name, result, s.took.Round(time.Millisecond))
	}
	fmt.Fprintf(r.out, "%s\ntotal %s\n", strings.Repeat("─", width+19), time.Since(r.start).Round(time.Millisecond))
	if failed != "" {
		fmt.Fprintf(r.out, "\nFAILED at %s\n", failed)
	} else {
		fmt.Fprintln(r.out, "\nAll steps passed.")
	}
}

// Failed names the first failed step, "" when every step passed.
func (r *Report) Failed() string {
	for _, s := range r.steps {
		if !s.ok {
			return s.name + ": " + s.detail
		}
	}
	return ""
}
