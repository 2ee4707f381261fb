// Package lease holds the pure decisions of the service heartbeat loop: when
// to renew after a success, how long to back off after a failure, how long one
// renewal may take, and what an answer from the Coordinator means for the
// lease. Nothing here sleeps, reads the clock or does I/O, so every rule is
// table-tested on its own and the loop in package caracal only wires them up.
package lease

import (
	"errors"
	"time"

	"github.com/caracal-go/caracal/internal/apierr"
)

// Cadence and backoff constants (PROTOCOL §5.7, Appendix A).
const (
	// MinCadence and MaxCadence clamp the derived cadence.
	MinCadence = time.Second
	MaxCadence = 5 * time.Minute
	// BackoffBase is the first retry delay after a failed renewal (before
	// jitter); each further failure doubles it up to BackoffMax.
	BackoffBase = time.Second
	BackoffMax  = 30 * time.Second
	// MinRetry is the shortest wait between two renewal attempts unless
	// the lease deadline is closer still; it is what keeps a failing loop
	// from spinning.
	MinRetry = 500 * time.Millisecond
	// CallTimeoutMax bounds one renewal call (the SDK's Coordinator
	// per-call timeout).
	CallTimeoutMax = 10 * time.Second
	// MaxLease is the longest lease a handle holds between renewals,
	// whatever the Coordinator's answer implies (its default is 120 s): a
	// deadline centuries away, or a lease measured from a last heartbeat
	// that long ago, would otherwise keep a handle whose renewals all fail
	// from ever reporting its lease lost.
	MaxLease = 24 * time.Hour
)

// RenewDelay returns how long to wait after a successful renewal before the
// next one, given the lease time remaining and u, a uniform random number in
// [0, 1).
//
// With interval > 0 the cadence is fixed at interval. Otherwise it is derived
// from the lease: clamp(remaining/3, MinCadence, MaxCadence) × U[0.9, 1.1],
// about 40 s for the Coordinator's default 120 s lease; the jitter keeps many
// services started together from renewing in lock step.
//
// Whatever the cadence, the next renewal is due before two thirds of the
// remaining lease have passed, so a fixed interval longer than the lease
// cannot let it lapse between renewals. remaining ≤ 0 returns 0: the lease is
// already gone and the caller must declare it lost instead of renewing.
func RenewDelay(interval, remaining time.Duration, u float64) time.Duration {
	if remaining <= 0 {
		return 0
	}
	var d time.Duration
	if interval > 0 {
		d = interval
	} else {
		d = min(max(remaining/3, MinCadence), MaxCadence)
		d = scale(d, 0.9+0.2*clampUnit(u))
	}
	if limit := remaining - remaining/3; d > limit {
		d = limit
	}
	return d
}

// RetryDelay returns how long to wait before retrying after the attempt-th
// consecutive failed renewal (attempt counts from 0), given the server's
// Retry-After (0 if none), the lease time remaining and u, a uniform random
// number in [0, 1).
//
// The delay is exponential from BackoffBase, capped at BackoffMax, with equal
// jitter (a uniform draw from the upper half). A longer Retry-After wins. The
// result is then cut to a third of the remaining lease, so that several
// attempts still fit before the deadline, but never below MinRetry, so that a
// failing Coordinator sees bounded traffic; and it never exceeds the remaining
// lease, so the loop never sleeps past the deadline. remaining ≤ 0 returns 0:
// the lease is gone.
func RetryDelay(attempt int, retryAfter, remaining time.Duration, u float64) time.Duration {
	if remaining <= 0 {
		return 0
	}
	d := BackoffMax
	if attempt < 0 {
		attempt = 0
	}
	if attempt < 16 { // beyond that the shift only overflows
		d = min(BackoffBase<<attempt, BackoffMax)
	}
	d = d/2 + scale(d/2, clampUnit(u))
	if retryAfter > d {
		d = retryAfter
	}
	if limit := remaining / 3; d > limit {
		d = max(limit, MinRetry)
	}
	return min(d, remaining)
}

// CallTimeout bounds one renewal call: the per-call timeout, but never past
// the lease deadline, so that a Coordinator that never answers cannot keep the
// loop from declaring the lease lost on time.
func CallTimeout(remaining time.Duration) time.Duration {
	return max(min(remaining, CallTimeoutMax), 0)
}

// Class is what a failed renewal means for the lease.
type Class int

// The classes of a renewal error.
const (
	// Transient: retry with backoff until the deadline (network errors,
	// timeouts, 5xx, 429, 401 after the client's own refresh, and any
	// answer the protocol does not name as final).
	Transient Class = iota
	// Gone: the session is not there to renew any more (404,
	// session_not_live, session_subject_inactive, session_not_service).
	Gone
	// Fenced: a newer holder attached (session_lease_fenced).
	Fenced
	// Suspended: the session is suspended (session_lease_expired,
	// session_suspended).
	Suspended
)

// Classify sorts a heartbeat or lease-acquire error (PROTOCOL §4.5, §4.6,
// §5.7). Only Coordinator answers can be final; everything else, including
// STS failures while fetching a lifecycle token, is Transient.
func Classify(err error) Class {
	var e *apierr.Error
	if !errors.As(err, &e) || e.Service != "coordinator" {
		return Transient
	}
	switch e.Code {
	case "session_lease_fenced":
		return Fenced
	case "session_lease_expired", "session_suspended":
		return Suspended
	case "session_not_live", "session_subject_inactive", "session_not_service",
		"session_not_found_or_not_active", "already_terminated":
		return Gone
	}
	if e.StatusCode == 404 {
		return Gone
	}
	return Transient
}

func clampUnit(u float64) float64 {
	switch {
	case u < 0 || u != u: // NaN too
		return 0
	case u >= 1:
		return 1
	}
	return u
}

func scale(d time.Duration, f float64) time.Duration {
	return time.Duration(float64(d) * f)
}
