package sockio

import (
	"sync/atomic"
	"time"
)

// Rearm throttles the re-arming of an idle deadline or timer: a deadline
// of timeout is pushed forward at most every timeout/8, so it fires
// between 7/8 of timeout and all of it after the last activity, and the
// common path costs no timer operation. The zero value is ready; it is
// safe for concurrent use.
type Rearm struct {
	last atomic.Int64 // unix nanos of the last arm; 0 for none
}

// Due reports whether a deadline of timeout should be re-armed at now, and
// if so records now as the arm. A timeout ≤ 0 is never due.
func (r *Rearm) Due(now time.Time, timeout time.Duration) bool {
	n := now.UnixNano()
	if timeout <= 0 || n-r.last.Load() < int64(timeout/8) {
		return false
	}
	r.last.Store(n)
	return true
}

// Armed records an arm made at now (a timer started elsewhere).
func (r *Rearm) Armed(now time.Time) { r.last.Store(now.UnixNano()) }

// Reset makes the next Due report true.
func (r *Rearm) Reset() { r.last.Store(0) }
