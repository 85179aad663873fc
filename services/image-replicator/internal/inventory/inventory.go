// Package inventory is the replicator's run-once mode: replicate every image
// of a list file and exit, so an init container can pre-seed the mirror of a
// new environment (SPEC §3.6).
package inventory

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/replicate"
)

// Entry is one line of a list file.
type Entry struct {
	Line int
	// Source is the image to replicate.
	Source string
	// Destination is the mirror reference when the line names one; "" means
	// Runner.Map decides.
	Destination string
}

// Parse reads a list file: one image per line, optionally followed by its
// mirror reference; blank lines and "#" comments (whole-line or trailing) are
// skipped. Images cannot contain "#" or whitespace, so neither is ambiguous.
func Parse(r io.Reader) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		switch len(fields) {
		case 0:
			continue
		case 1:
			out = append(out, Entry{Line: n, Source: fields[0]})
		case 2:
			out = append(out, Entry{Line: n, Source: fields[0], Destination: fields[1]})
		default:
			return nil, fmt.Errorf("inventory line %d: want an image and optionally its mirror reference, got %d fields", n, len(fields))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	return out, nil
}

// Mapper gives the mirror reference of a source image, as mirror.Desired
// does: changed false means the image is not to be mirrored (it is already in
// the mirror, or policy leaves it).
type Mapper func(source string) (destination string, changed bool, err error)

// Runner replicates a list of images once each.
type Runner struct {
	Backend replicate.Backend
	// Checker, when set, skips images the mirror already holds.
	Checker replicate.Checker
	// Map gives destinations for entries without one.
	Map Mapper
	// PollInterval is how often an asynchronous attempt is polled; 0 means 10s.
	PollInterval time.Duration
	// Concurrency is how many images replicate at once; 0 means 4.
	Concurrency int
}

// Outcome is what happened to one image.
type Outcome string

// Outcomes of one image.
const (
	Replicated Outcome = "replicated"
	Present    Outcome = "present"   // the mirror already held it
	Unmapped   Outcome = "unmapped"  // Map left it as it is
	Duplicate  Outcome = "duplicate" // an earlier line has the same destination
	Failed     Outcome = "failed"
)

// Result is the outcome of one entry.
type Result struct {
	Entry
	Outcome Outcome
	Message string
}

// Summary counts the outcomes of a run.
type Summary struct {
	Total      int
	Replicated int
	Present    int
	Unmapped   int
	Duplicate  int
	Failed     int
	// Results lists every entry in file order.
	Results []Result
}

// String is the one-line report printed at the end of a run.
func (s Summary) String() string {
	return fmt.Sprintf("%d images: %d replicated, %d already present, %d not mirrored, %d duplicate, %d failed",
		s.Total, s.Replicated, s.Present, s.Unmapped, s.Duplicate, s.Failed)
}

// Run replicates every entry at most once and returns the summary; the error
// is non-nil when any image failed (or ctx ended), naming the failures.
func (r *Runner) Run(ctx context.Context, entries []Entry) (Summary, error) {
	if r.Backend == nil {
		return Summary{}, errors.New("inventory: no backend")
	}
	interval := r.PollInterval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	workers := r.Concurrency
	if workers <= 0 {
		workers = 4
	}

	results := make([]Result, len(entries))
	seen := map[string]bool{}
	var todo []int
	for i, e := range entries {
		results[i] = Result{Entry: e}
		if e.Destination == "" {
			if r.Map == nil {
				results[i].Outcome, results[i].Message = Failed, "no destination and no mapping"
				continue
			}
			dst, changed, err := r.Map(e.Source)
			switch {
			case err != nil:
				results[i].Outcome, results[i].Message = Failed, err.Error()
				continue
			case !changed:
				results[i].Outcome = Unmapped
				continue
			}
			results[i].Destination = dst
		}
		if seen[results[i].Destination] {
			results[i].Outcome = Duplicate
			continue
		}
		seen[results[i].Destination] = true
		todo = append(todo, i)
	}

	work := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(todo)) {
		wg.Go(func() {
			for i := range work {
				results[i].Outcome, results[i].Message = r.one(ctx, results[i].Entry, interval)
			}
		})
	}
feed:
	for _, i := range todo {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()

	s := Summary{Total: len(entries), Results: results}
	var failures []string
	for i := range results {
		switch results[i].Outcome {
		case Replicated:
			s.Replicated++
		case Present:
			s.Present++
		case Unmapped:
			s.Unmapped++
		case Duplicate:
			s.Duplicate++
		case Failed:
			s.Failed++
			failures = append(failures, fmt.Sprintf("line %d %s: %s", results[i].Line, results[i].Source, results[i].Message))
		default:
			// Never started: ctx ended first.
			results[i].Outcome, results[i].Message = Failed, "not started: "+context.Cause(ctx).Error()
			s.Failed++
			failures = append(failures, fmt.Sprintf("line %d %s: %s", results[i].Line, results[i].Source, results[i].Message))
		}
	}
	if s.Failed > 0 {
		sort.Strings(failures)
		return s, fmt.Errorf("inventory: %d of %d images failed: %s", s.Failed, s.Total, strings.Join(failures, "; "))
	}
	return s, nil
}

// one replicates one entry: check the mirror, then run one attempt to its end.
func (r *Runner) one(ctx context.Context, e Entry, interval time.Duration) (Outcome, string) {
	if r.Checker != nil {
		has, err := r.Checker.Has(ctx, e.Destination)
		if err != nil {
			return Failed, err.Error()
		}
		if has {
			return Present, ""
		}
	}
	st, err := replicate.Wait(ctx, r.Backend, replicate.Request{Source: e.Source, Destination: e.Destination}, interval)
	if err != nil {
		return Failed, err.Error()
	}
	if !st.Succeeded {
		return Failed, st.Message
	}
	return Replicated, st.Message
}
