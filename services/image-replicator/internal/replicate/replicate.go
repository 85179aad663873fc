// Package replicate defines what the image-replicator needs from a
// replication backend and from a mirror check, and the start-then-poll loop
// that drives a backend to the end of one attempt.
//
// One interface serves both kinds of backend: Start returns a Status, which an
// asynchronous backend (CodeBuild) returns with Done false and an ID to poll,
// and a synchronous one (registry-to-registry copy) returns already Done.
// Callers therefore write one loop: Start, and while !Done, Poll(ID) later.
//
// Errors and failures are different things: a returned error means the backend
// could not be asked (network, throttling, bad configuration) and the attempt
// has not happened or its outcome is unknown; a Status with Done and
// !Succeeded means the attempt ran and failed, which counts towards
// MAX_REPLICATION_ATTEMPTS. IsRetryable tells transient errors from permanent ones.
package replicate

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Request is one image to copy into the mirror.
type Request struct {
	// Source is the image as a Pod asked for it.
	Source string
	// Destination is the image reference in the mirror.
	Destination string
}

// Status is where one replication attempt stands.
type Status struct {
	// ID names the attempt at the backend (a CodeBuild build id); empty for a
	// synchronous backend. It goes into ImageReplication.status.buildId.
	ID string
	// Done is false while the attempt runs.
	Done bool
	// Succeeded is meaningful once Done.
	Succeeded bool
	// Message says what happened, for ImageReplication.status.message.
	Message string
}

// Backend replicates one image per attempt.
type Backend interface {
	// Start begins an attempt. A synchronous backend returns it finished.
	Start(ctx context.Context, req Request) (Status, error)
	// Poll reports on the attempt Start returned the ID of.
	Poll(ctx context.Context, id string) (Status, error)
}

// Checker tells whether the mirror already holds an image: the one tag or
// digest of ref, not a listing.
type Checker interface {
	Has(ctx context.Context, ref string) (bool, error)
}

// RetryableError marks an error that is expected to go away by itself
// (throttling, a concurrency limit, a network blip): retry with backoff
// without counting an attempt.
type RetryableError struct{ Err error }

func (e *RetryableError) Error() string { return e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// Retryable wraps err as a RetryableError; nil stays nil.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return &RetryableError{Err: err}
}

// IsRetryable reports whether err, or an error it wraps, is a RetryableError.
func IsRetryable(err error) bool {
	var r *RetryableError
	return errors.As(err, &r)
}

// Wait drives one attempt to its end: Start, then Poll every interval until
// Done. Retryable errors are retried at the same interval until ctx ends;
// any other error is returned at once.
func Wait(ctx context.Context, b Backend, req Request, interval time.Duration) (Status, error) {
	var st Status
	for {
		var err error
		st, err = b.Start(ctx, req)
		if err == nil {
			break
		}
		if !IsRetryable(err) {
			return Status{}, fmt.Errorf("start replication of %s: %w", req.Source, err)
		}
		if err := sleep(ctx, interval); err != nil {
			return Status{}, fmt.Errorf("start replication of %s: %w", req.Source, err)
		}
	}
	for !st.Done {
		if err := sleep(ctx, interval); err != nil {
			return st, fmt.Errorf("wait for replication %s of %s: %w", st.ID, req.Source, err)
		}
		next, err := b.Poll(ctx, st.ID)
		if err != nil {
			if IsRetryable(err) {
				continue
			}
			return st, fmt.Errorf("poll replication %s of %s: %w", st.ID, req.Source, err)
		}
		if next.ID == "" {
			next.ID = st.ID
		}
		st = next
	}
	return st, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
