package replicator

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
)

func TestBackoff(t *testing.T) {
	b := Backoff{Base: 30 * time.Second, Max: 5 * time.Minute}
	for attempt, want := range map[int32]time.Duration{
		0: 30 * time.Second, 1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute, 4: 4 * time.Minute, 5: 5 * time.Minute, 40: 5 * time.Minute,
	} {
		if got := b.After(attempt); got != want {
			t.Errorf("After(%d) = %s, want %s", attempt, got, want)
		}
	}
}

func TestPlan(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(ago time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(-ago)); return &t }
	backoff := Backoff{Base: time.Minute, Max: 10 * time.Minute}
	tests := []struct {
		name string
		st   orbitv1.ImageReplicationStatus
		want action
		wait time.Duration
	}{
		{name: "new", want: actStart},
		{name: "pending without attempts", st: orbitv1.ImageReplicationStatus{Phase: orbitv1.PhasePending}, want: actStart},
		{name: "build running", st: orbitv1.ImageReplicationStatus{Phase: orbitv1.PhaseReplicating, Attempt: 1, BuildID: "p:1"}, want: actPoll},
		{name: "replicating without build id resumes the same attempt", st: orbitv1.ImageReplicationStatus{Phase: orbitv1.PhaseReplicating, Attempt: 2}, want: actResume},
		{name: "failed attempt within backoff waits", st: orbitv1.ImageReplicationStatus{Phase: orbitv1.PhasePending, Attempt: 2, LastTransitionTime: at(30 * time.Second)},
			want: actWait, wait: 90 * time.Second},
		{name: "failed attempt after backoff starts the next", st: orbitv1.ImageReplicationStatus{Phase: orbitv1.PhasePending, Attempt: 1, LastTransitionTime: at(2 * time.Minute)}, want: actStart},
		{name: "failed with attempts left retries (max raised)", st: orbitv1.ImageReplicationStatus{Phase: orbitv1.PhaseFailed, Attempt: 2, LastTransitionTime: at(time.Hour)}, want: actStart},
		{name: "failed after the last attempt stays", st: orbitv1.ImageReplicationStatus{Phase: orbitv1.PhaseFailed, Attempt: 3, LastTransitionTime: at(time.Hour)}, want: actNone},
		{name: "pending with attempts used up gives up", st: orbitv1.ImageReplicationStatus{Phase: orbitv1.PhasePending, Attempt: 3}, want: actGiveUp},
		{name: "complete but gone from the mirror", st: orbitv1.ImageReplicationStatus{Phase: orbitv1.PhaseComplete, Attempt: 1}, want: actRestart},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, wait := plan(tt.st, now, 3, backoff)
			if got != tt.want || wait != tt.wait {
				t.Errorf("plan = %v, %s; want %v, %s", got, wait, tt.want, tt.wait)
			}
		})
	}
}
