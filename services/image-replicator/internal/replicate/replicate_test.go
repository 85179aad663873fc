package replicate

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// scripted is a Backend whose Start and Poll answers are given in order.
type scripted struct {
	starts []result
	polls  []result
	polled []string
}

type result struct {
	st  Status
	err error
}

func (s *scripted) Start(context.Context, Request) (Status, error) {
	r := s.starts[0]
	s.starts = s.starts[1:]
	return r.st, r.err
}

func (s *scripted) Poll(_ context.Context, id string) (Status, error) {
	s.polled = append(s.polled, id)
	r := s.polls[0]
	s.polls = s.polls[1:]
	return r.st, r.err
}

func TestWait(t *testing.T) {
	throttled := Retryable(errors.New("ThrottlingException"))
	denied := errors.New("AccessDenied")
	tests := []struct {
		name      string
		b         *scripted
		want      Status
		wantErr   error
		wantPolls int
	}{
		{
			name: "synchronous backend needs no poll",
			b:    &scripted{starts: []result{{st: Status{Done: true, Succeeded: true}}}},
			want: Status{Done: true, Succeeded: true},
		},
		{
			name: "asynchronous backend polled until done",
			b: &scripted{
				starts: []result{{st: Status{ID: "b:1"}}},
				polls:  []result{{st: Status{ID: "b:1"}}, {err: throttled}, {st: Status{Done: true, Message: "FAILED"}}},
			},
			want:      Status{ID: "b:1", Done: true, Message: "FAILED"},
			wantPolls: 3,
		},
		{
			name: "retryable start errors are retried",
			b:    &scripted{starts: []result{{err: throttled}, {err: throttled}, {st: Status{Done: true, Succeeded: true}}}},
			want: Status{Done: true, Succeeded: true},
		},
		{
			name:    "other start errors end the wait",
			b:       &scripted{starts: []result{{err: denied}}},
			wantErr: denied,
		},
		{
			name: "other poll errors end the wait",
			b: &scripted{
				starts: []result{{st: Status{ID: "b:2"}}},
				polls:  []result{{err: denied}},
			},
			want:      Status{ID: "b:2"},
			wantErr:   denied,
			wantPolls: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Wait(t.Context(), tt.b, Request{Source: "nginx", Destination: "mirror/nginx"}, time.Millisecond)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Wait error %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Wait = %+v, want %+v", got, tt.want)
			}
			if len(tt.b.polled) != tt.wantPolls {
				t.Errorf("polled %d times, want %d", len(tt.b.polled), tt.wantPolls)
			}
			for _, id := range tt.b.polled {
				if id != tt.want.ID {
					t.Errorf("polled %q, want %q", id, tt.want.ID)
				}
			}
		})
	}
}

func TestWaitStopsWithContext(t *testing.T) {
	forever := &scripted{starts: []result{{st: Status{ID: "b:3"}}}}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	// A poll interval longer than the deadline: the wait ends at the deadline, not the tick.
	_, err := Wait(ctx, forever, Request{}, time.Hour)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait = %v, want the context's deadline", err)
	}
}

func TestRetryable(t *testing.T) {
	base := errors.New("slow down")
	wrapped := fmt.Errorf("start build: %w", Retryable(base))
	if !IsRetryable(wrapped) || !errors.Is(wrapped, base) {
		t.Errorf("wrapped retryable error lost: %v", wrapped)
	}
	if IsRetryable(base) || IsRetryable(nil) || Retryable(nil) != nil {
		t.Error("plain errors or nil count as retryable")
	}
	if wrapped.Error() != "start build: slow down" {
		t.Errorf("message %q", wrapped)
	}
}
