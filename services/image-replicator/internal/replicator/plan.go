package replicator

import (
	"time"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
)

// action is what a reconcile does with an ImageReplication the mirror does not hold.
type action int

const (
	// actNone: nothing to do (Failed after the last attempt).
	actNone action = iota
	// actGiveUp: attempts are used up but the phase does not say so yet: set Failed.
	actGiveUp
	// actWait: the backoff after a failed attempt has not passed; look again after it.
	actWait
	// actPoll: an attempt runs at the backend under status.buildId; ask how it goes.
	actPoll
	// actResume: an attempt was counted but never got a build id (the process stopped, or the
	// backend throttled, before it started): start it again under the same attempt number.
	actResume
	// actStart: start the next attempt.
	actStart
	// actRestart: the resource says Complete but the mirror no longer holds the image (a
	// lifecycle policy, someone deleting it): replicate again, counting from one.
	actRestart
)

func (a action) String() string {
	switch a {
	case actNone:
		return "none"
	case actGiveUp:
		return "giveUp"
	case actWait:
		return "wait"
	case actPoll:
		return "poll"
	case actResume:
		return "resume"
	case actStart:
		return "start"
	case actRestart:
		return "restart"
	}
	return "unknown"
}

// Backoff is the wait after failed attempt n: Base·2^(n-1), at most Max.
type Backoff struct {
	Base, Max time.Duration
}

// After returns the wait after the attempt-th failed attempt.
func (b Backoff) After(attempt int32) time.Duration {
	d := b.Base
	for i := int32(1); i < attempt && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// plan decides, from the status alone, what to do about an image the mirror does not hold.
// Everything it needs is in the status, so a restarted controller decides exactly as the
// one that stopped would have: an attempt in flight is polled or resumed, not counted again,
// and the backoff runs from the time the last attempt failed.
func plan(st orbitv1.ImageReplicationStatus, now time.Time, maxAttempts int32, backoff Backoff) (action, time.Duration) {
	switch st.Phase {
	case orbitv1.PhaseReplicating:
		if st.BuildID != "" {
			return actPoll, 0
		}
		return actResume, 0
	case orbitv1.PhaseComplete:
		return actRestart, 0
	}
	// Pending, Failed or new.
	if st.Attempt >= maxAttempts {
		if st.Phase == orbitv1.PhaseFailed {
			return actNone, 0
		}
		return actGiveUp, 0
	}
	if st.Attempt > 0 && st.LastTransitionTime != nil {
		due := st.LastTransitionTime.Add(backoff.After(st.Attempt))
		if wait := due.Sub(now); wait > 0 {
			return actWait, wait
		}
	}
	return actStart, 0
}
