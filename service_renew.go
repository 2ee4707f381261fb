package caracal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/caracal-go/caracal/internal/apierr"
	"github.com/caracal-go/caracal/internal/lease"
	"github.com/caracal-go/caracal/internal/wire"
)

// The renewal loop of a Service: one heartbeat and how its answer moves the
// lease (renew, failed), the background step on the renewal timer (fire),
// the local deadline (expire), and how a handle ends (lose, end). The
// cadence and backoff rules themselves are the pure functions of
// internal/lease.

// Heartbeat renews the lease once and returns it. It is how a service
// started without a heartbeat option stays alive: call it well before
// Deadline (a third of the lease is a good cadence). A transient failure is
// returned as is and leaves the handle live; a final answer ends the handle
// and returns the reason (see Service). After the handle ended, Heartbeat
// returns Err without calling the Coordinator. Close cancels a Heartbeat in
// flight.
func (s *Service) Heartbeat(ctx context.Context) (Lease, error) {
	if err := s.check(ctx, "Heartbeat"); err != nil {
		return Lease{}, err
	}
	return s.renew(ctx)
}

// check refuses a call of method on a nil or zero Service (one that
// SpawnService or AttachService did not return), or with a nil ctx.
func (s *Service) check(ctx context.Context, method string) error {
	if s == nil || s.c == nil {
		return notFromSpawn("Service."+method, "Service", "Client.SpawnService or AttachService")
	}
	if ctx == nil {
		return nilContext("Service." + method)
	}
	return nil
}

// renew sends one heartbeat, bounded by ctx, by the handle's end and by the
// local lease deadline, and applies the answer.
func (s *Service) renew(ctx context.Context) (Lease, error) {
	s.mu.Lock()
	if s.err != nil {
		defer s.mu.Unlock()
		return s.leaseLocked(), s.err
	}
	gen, remaining := s.generation, time.Until(s.deadline)
	s.mu.Unlock()
	if remaining <= 0 {
		s.expire()
		return s.current(), s.Err()
	}

	cctx, cancel := context.WithTimeout(ctx, lease.CallTimeout(remaining))
	defer cancel()
	defer context.AfterFunc(s.stop, cancel)()
	if s.stop.Err() != nil {
		// The handle ended since the check above: the watch would cancel
		// the call only from its own goroutine, perhaps after it was sent.
		return s.current(), s.Err()
	}
	sent := time.Now()
	resp, err := s.c.coord.Heartbeat(cctx, s.id, gen)
	if err != nil {
		return s.failed(ctx, err)
	}

	s.mu.Lock()
	if s.err != nil { // ended while the heartbeat was in flight
		defer s.mu.Unlock()
		return s.leaseLocked(), s.err
	}
	var lastErr error
	if !sent.Before(s.renewedAt) {
		// Only the answer to the renewal sent last sets the deadline: an
		// older renewal answered after it says nothing newer.
		lastErr = s.renewedLocked(resp.Agent, sent)
	}
	if resp.Agent.Status != "" {
		s.status = resp.Agent.Status
	}
	s.lastErr = lastErr
	s.expiry.Reset(time.Until(s.deadline))
	l := s.leaseLocked()
	s.mu.Unlock()

	if !l.Deadline.After(time.Now()) {
		s.expire()
		return s.current(), s.Err()
	}

	if l.Status == wire.StatusSuspended {
		cause := fmt.Errorf("%w: service %s (the Coordinator reports it suspended; Client.Resume, then AttachService)", ErrSuspended, s.id)
		s.lose(cause)
		return l, cause
	}
	return l, nil
}

// renewedLocked applies a, the answer to the latest renewal, sent at sent:
// it sets the lease length and the deadline, earlier than the one held if
// the lease got shorter, and returns why no lease is left if the
// Coordinator granted none. s.mu is held.
func (s *Service) renewedLocked(a wire.HeartbeatAgent, sent time.Time) (lastErr error) {
	s.renewedAt = sent
	before := s.deadline
	n, known := renewedLength(a)
	if n > 0 {
		s.leaseLen = n
	}
	switch {
	case known && n <= 0:
		// A deadline no later than the renewal itself: the Coordinator
		// granted no lease, and the length known before says nothing
		// about this one.
		s.deadline = sent
		lastErr = fmt.Errorf("the Coordinator renewed the lease with none left (last heartbeat %.64q, deadline %.64q)", a.LastHeartbeatAt, a.HeartbeatDeadlineAt)
	case s.leaseLen > 0:
		s.deadline = sent.Add(s.leaseLen)
	default:
		if d := leaseDeadline(a.HeartbeatDeadlineAt, sent, 0); !d.IsZero() {
			s.deadline = d
		}
	}
	if s.tick != nil && !s.stepping && s.deadline.Before(before) {
		// A renewal by hand learnt of a shorter lease: the background
		// renewal scheduled for the longer one would come too late.
		// (A background step re-arms its timer itself when it ends.)
		s.tick.Reset(lease.RenewDelay(s.sc.interval, time.Until(s.deadline), rand.Float64()))
	}
	return lastErr
}

// failed applies a failed heartbeat: a final answer ends the handle; a
// transient one is remembered as the reason in case the deadline passes.
func (s *Service) failed(ctx context.Context, err error) (Lease, error) {
	if s.stop.Err() != nil {
		// The handle ended while the call was in flight; report why.
		return s.current(), s.Err()
	}
	var cause error
	switch lease.Classify(err) {
	case lease.Fenced:
		cause = fmt.Errorf("caracal: service %s: another holder attached (AttachService); this handle no longer owns the session: %w", s.id, err)
	case lease.Gone:
		cause = fmt.Errorf("caracal: service %s: the session is no longer live: %w", s.id, lost{err})
	case lease.Suspended:
		cause = fmt.Errorf("caracal: service %s: the session is suspended; Client.Resume, then AttachService: %w", s.id, err)
	default:
		if ctx.Err() != nil {
			// The caller of Heartbeat gave up: says nothing about the
			// lease. (A final answer above came from the Coordinator
			// whatever the caller did after.)
			return s.current(), err
		}
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
		if time.Until(s.Deadline()) <= 0 {
			s.expire()
		}
		if ended := s.Err(); ended != nil {
			// The deadline passed (the call was cut off at it), or the
			// handle ended meanwhile: the handle is not live any more, so
			// report why (an expiry's reason wraps err).
			return s.current(), ended
		}
		return s.current(), err
	}
	s.lose(cause)
	return s.current(), cause
}

// fire is one step of the background renewal: it runs on the renewal timer
// (so no goroutine waits between renewals, which matters with thousands of
// services in one process), renews once and re-arms the timer with the delay
// of the pure cadence or backoff rule. The call itself is bounded by the
// lease deadline, and the deadline timer declares loss on time whatever the
// Coordinator does. Steps never overlap: a step re-arms the timer only at
// its end, and one fired while another is in progress (a renewal by hand
// re-armed the timer just before the step took the lock) does nothing,
// since the step in progress re-arms the timer when it ends. end stops the
// timer and closeSequence waits for a step in progress.
func (s *Service) fire() {
	s.mu.Lock()
	if s.err != nil || s.stepping {
		s.mu.Unlock()
		return
	}
	s.ticking.Add(1)
	s.stepping = true
	s.mu.Unlock()
	defer s.ticking.Done()

	_, err := s.renew(s.stop)

	s.mu.Lock()
	s.stepping = false
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	remaining := time.Until(s.deadline)
	var d time.Duration
	if err == nil {
		s.attempt = 0
		d = lease.RenewDelay(s.sc.interval, remaining, rand.Float64())
	} else {
		var ae *apierr.Error
		var retryAfter time.Duration
		if errors.As(err, &ae) {
			retryAfter = ae.RetryAfter
		}
		d = lease.RetryDelay(s.attempt, retryAfter, remaining, rand.Float64())
		s.attempt++
	}
	// d ≤ 0 only once the deadline has passed, where the deadline timer
	// declares the loss; d never reaches past the deadline otherwise.
	if d > 0 {
		s.tick.Reset(d)
	}
	attempt := s.attempt
	s.mu.Unlock()
	if err != nil {
		// A warning for the first failure of a run; its retries are
		// details, so that an outage costs each service one warning (and
		// one more if the lease is lost), not one per retry.
		level := slog.LevelWarn
		if attempt > 1 {
			level = slog.LevelDebug
		}
		s.log.Log(context.Background(), level, "caracal: service lease renewal failed; retrying", "attempt", attempt, "retry_in", d, "lease_remaining", remaining, "error", err)
	}
}

// expire declares the lease lost if its local deadline has passed (the timer
// may fire late, after a renewal moved the deadline).
func (s *Service) expire() {
	s.mu.Lock()
	if s.err != nil || time.Until(s.deadline) > 0 {
		s.mu.Unlock()
		return
	}
	deadline, last := s.deadline, s.lastErr
	s.mu.Unlock()
	cause := fmt.Errorf("%w: service %s: no renewal succeeded before the lease deadline %s (take it back with AttachService; if that reports ErrSuspended, Client.Resume, then AttachService)", ErrLeaseExpired, s.id, deadline.Format(time.RFC3339Nano))
	if last != nil {
		cause = fmt.Errorf("%w; last error: %w", cause, last)
	}
	s.lose(cause)
}

// lose ends the handle on a lease loss and runs the OnLeaseLost callback.
func (s *Service) lose(cause error) {
	if !s.end(cause) {
		return
	}
	s.log.Warn("caracal: service lease lost", "error", cause)
	if f := s.sc.onLost; f != nil {
		go f(cause)
	}
}

// end records why the handle ended, stops renewal and cancels the context.
// Only the first call counts; it reports whether it was that one and
// ended the handle with cause (not with the start context's).
func (s *Service) end(cause error) bool { return s.endWith(cause, false) }

// endWith is end; inherited marks cause as the parent's lease loss, which
// leaves this handle's own lease (fencing the parent, say, fences none of
// its subtree), so that Close still retires the session.
func (s *Service) endWith(cause error, inherited bool) bool {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return false
	}
	ended := true
	if c := context.Cause(s.ctx); c != nil {
		// The start context's end reached the handle's Context before its
		// watch ended the handle: end it with that cause, as the watch
		// would have (see shutdown), so that Err and the Context agree.
		cause, inherited, ended = c, leaseLoss(c), false
	}
	s.err, s.inherited = cause, inherited
	if s.expiry != nil {
		s.expiry.Stop()
	}
	if s.tick != nil {
		s.tick.Stop()
	}
	s.mu.Unlock()
	s.halt()
	s.cancel(cause)
	close(s.done)
	return ended
}

// startDeadline derives the local deadline and the lease length from a
// service start answer: the lease is heartbeat_deadline_at −
// last_heartbeat_at (the Coordinator does not send it), counted from when
// the request was sent so that clock skew cannot make it later than the
// server's.
func startDeadline(ses wire.Session, sent time.Time) (time.Time, time.Duration) {
	if ses.HeartbeatDeadlineAt == nil {
		return time.Time{}, 0
	}
	dl, err := wire.ParseTime(*ses.HeartbeatDeadlineAt)
	if err != nil {
		return time.Time{}, 0
	}
	if ses.LastHeartbeatAt != nil {
		if last, err := wire.ParseTime(*ses.LastHeartbeatAt); err == nil && dl.After(last) {
			n := min(dl.Sub(last), lease.MaxLease)
			return sent.Add(n), n
		}
	}
	return leaseDeadline(*ses.HeartbeatDeadlineAt, sent, 0), 0
}

// renewedLength is the lease length a heartbeat answer implies; known is
// false when the answer does not carry both of its times.
func renewedLength(a wire.HeartbeatAgent) (n time.Duration, known bool) {
	dl, err1 := wire.ParseTime(a.HeartbeatDeadlineAt)
	last, err2 := wire.ParseTime(a.LastHeartbeatAt)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return min(dl.Sub(last), lease.MaxLease), true
}

// leaseDeadline converts a Coordinator deadline to the local monotonic clock
// when the answer carries no server time to measure the lease against (lease
// acquire): it then trusts the wall clocks to agree, but never gives more than
// leaseLen from sent when the lease length is known, nor more than
// lease.MaxLease.
func leaseDeadline(serverDeadline string, sent time.Time, leaseLen time.Duration) time.Time {
	dl, err := wire.ParseTime(serverDeadline)
	if err != nil {
		return time.Time{}
	}
	now := time.Now()
	local := now.Add(dl.Sub(now.Round(0)))
	if leaseLen <= 0 {
		leaseLen = lease.MaxLease
	}
	if limit := sent.Add(min(leaseLen, lease.MaxLease)); local.After(limit) {
		local = limit
	}
	return local
}

// acquiredDeadline is the local deadline of a lease acquire answer. With the
// answer's Date (the Coordinator's clock, whole seconds) it is sent +
// (deadline − Date) − 1s, which never lies later than the Coordinator's
// deadline whatever the clocks say: the renewal happened after sent, and
// Date is at most a second behind the Coordinator's time when it answered.
// The wall-clock conversion of leaseDeadline cannot be used then: clocks
// that disagree by less than Date's grain would pass any check against it,
// and a local clock behind the Coordinator's makes that deadline late.
// Without a Date the wall clocks are trusted.
func acquiredDeadline(serverDeadline string, date, sent time.Time, leaseLen time.Duration) time.Time {
	local := leaseDeadline(serverDeadline, sent, leaseLen)
	dl, err := wire.ParseTime(serverDeadline)
	if local.IsZero() || err != nil || date.IsZero() {
		return local
	}
	return sent.Add(min(dl.Sub(date)-time.Second, lease.MaxLease))
}

// lost marks a heartbeat answer that ended the lease for good as
// ErrLeaseLost, whatever its code (any 404 counts, PROTOCOL §5.7).
type lost struct{ error }

func (lost) Is(target error) bool { return target == ErrLeaseLost }
func (e lost) Unwrap() error      { return e.error }

// leaseLoss reports whether err is why a service lost its lease.
func leaseLoss(err error) bool {
	return lease.Classify(err) != lease.Transient || errors.Is(err, ErrLeaseFenced) ||
		errors.Is(err, ErrSuspended) || errors.Is(err, ErrLeaseExpired)
}

// retirable reports whether a handle that ended for reason still owns its
// session and should retire it.
func retirable(reason error) bool {
	if errors.Is(reason, ErrLeaseFenced) {
		return false
	}
	switch lease.Classify(reason) {
	case lease.Fenced, lease.Gone:
		return false
	}
	return true
}

// leaseEnded is closedErr's error for the agent of a service that lost its
// lease, or of a session started under one: the loss (ErrSuspended,
// ErrLeaseLost, ...) that also matches ErrSessionClosed.
type leaseEnded struct {
	cause error
	under string
}

func (e leaseEnded) Error() string      { return e.cause.Error() + e.under }
func (e leaseEnded) Unwrap() error      { return e.cause }
func (leaseEnded) Is(target error) bool { return target == ErrSessionClosed }
