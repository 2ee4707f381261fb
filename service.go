package caracal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/caracal-go/caracal/internal/lease"
	"github.com/caracal-go/caracal/internal/wire"
)

// Lease is the state of a service session's lease after a renewal.
type Lease struct {
	// Deadline is when the lease runs out unless renewed, on the local
	// clock: the time the renewal was sent plus the lease length, so it
	// never lies later than the Coordinator's own deadline.
	Deadline time.Time
	// Generation is the lease generation this holder renews with.
	Generation int64
	// Status is the session status the Coordinator reported ("active" or
	// "suspended").
	Status string
}

// Service is a long-lived service session kept alive by a heartbeat lease.
// The caller owns it and must Close it. It is safe for concurrent use.
//
// A Service reports the loss of its lease three ways: its Context is
// cancelled with the reason as the cause, Done is closed and Err returns the
// reason, and the OnLeaseLost callback, if any, runs. The reason matches, with
// errors.Is:
//
//   - ErrLeaseFenced (and ErrLeaseLost): another holder attached with
//     AttachService; this handle no longer owns the session.
//   - ErrLeaseLost: the Coordinator no longer has the session live
//     (retired, terminated, its subject revoked, not found), or
//     RevokeDelegation here revoked a delegation it held.
//   - ErrSuspended: the session is suspended (a missed lease found by the
//     Coordinator, or an operator). A suspended session cannot mint or
//     be attached; this handle stops renewing (the Coordinator would renew
//     the deadline but never resume the session). After an operator resumes
//     it, AttachService takes it over again.
//   - ErrLeaseExpired: the local lease deadline passed without a successful
//     renewal, for example during a Coordinator outage longer than the
//     lease. The Coordinator will suspend the session.
//
// A background renewal (HeartbeatInterval, HeartbeatAuto) that fails
// transiently (no answer, 429, 5xx) does not end the service: it is logged,
// a warning per run of failures, and retried after a jittered backoff that
// doubles from 1 s to at most 30 s (a longer Retry-After wins), cut to a
// third of the lease time remaining so that several attempts fit before the
// deadline, and never sleeps past the deadline, so only ErrLeaseExpired ends
// a service whose Coordinator does not answer.
//
// Closing the handle (Close, Client.Close) or cancelling the context it was
// started with ends it without a loss: the cause is then ErrSessionClosed or
// that context's cause. A child service started from a parent's Context ends
// with the parent's reason, but keeps its own lease: Close retires it.
type Service struct {
	c      *Client
	id     string
	agent  *Agent
	log    *slog.Logger
	sc     serviceConfig
	ctx    context.Context
	cancel context.CancelCauseFunc

	// stop is cancelled when the handle stops renewing (loss or close); it
	// cancels any in-flight heartbeat.
	stop context.Context
	halt context.CancelFunc
	// ticking counts a background renewal step in progress (fire).
	ticking sync.WaitGroup

	mu         sync.Mutex
	deadline   time.Time     // local lease deadline (monotonic clock)
	leaseLen   time.Duration // lease length, when known from a renewal
	renewedAt  time.Time     // when the renewal that set deadline was sent
	generation int64
	status     string
	err        error // why the handle ended; nil while live
	inherited  bool  // err is the parent's lease loss: this handle's own lease still holds
	done       chan struct{}
	expiry     *time.Timer     // fires at deadline: declares local loss
	tick       *time.Timer     // background renewal (fire); nil in manual mode
	unwatch    func() bool     // unregisters the watch on the start context
	parentLife context.Context // the parent session's Context, if this process holds it
	unparent   func() bool     // unregisters the watch on parentLife
	stepping   bool            // a background step (fire) is running
	attempt    int             // consecutive failed background renewals
	lastErr    error           // last transient renewal failure, for the loss reason

	closing  bool          // the close sequence was claimed (under mu)
	closed   chan struct{} // closed when the close sequence finished
	closeErr error         // written before closed is closed
}

// SpawnService starts a service session (lifecycle "service", lease-renewed,
// no TTL) and returns its handle. It takes the labels, metadata, grant,
// parent and idempotency options of Spawn (WithTTL is refused: a service
// lives as long as its lease is renewed) and the service options
// HeartbeatInterval, HeartbeatAuto and OnLeaseLost. Without a heartbeat
// option the caller renews with Heartbeat.
//
// ctx bounds the start and the service's life: when it is cancelled the
// service stops renewing and is retired, as by Close. Pass a context that
// lives as long as the service should (for example the one from
// signal.NotifyContext), not a request's. A service started from another
// service's Context (or with WithParent naming a service this process
// holds) is that service's child and ends with it, as the
// Coordinator ends a session's subtree: retired when the parent closes, and
// ended with the parent's reason, but not retired, when the parent's lease is
// lost (a suspended subtree resumes as a whole).
//
// Parent: a service is never the child of a task session (the Coordinator
// refuses it, and a task's end would terminate the service with it). With no
// WithParent, the session bound to ctx becomes the parent only if it is a
// service this process started; otherwise the service starts as a root
// session, under the application's authority. An explicit WithParent naming
// a task fails with the Coordinator's task_session_cannot_start_service, and
// Grant.Narrow with only a task, or nothing, bound to ctx fails with
// ErrNarrowNeedsParent before any call: a narrowed service is the child of
// a service.
//
// The lease renews the session, not a narrowed service's delegation: the
// edge ends at its expiry (the Narrow ttl, 24 hours by default), after which
// the service's mints are refused. A service meant to run longer needs a new
// delegation before then (Delegate from the parent, AcceptDelegation in the
// service).
func (c *Client) SpawnService(ctx context.Context, opts ...SpawnOption) (*Service, error) {
	if err := c.check(ctx, "SpawnService", true); err != nil {
		return nil, err
	}
	if err := c.beginStart(); err != nil {
		return nil, err
	}
	defer c.endStart()
	cfg := newSpawnConfig(opts)
	if cfg.service.err != nil {
		return nil, cfg.service.err
	}
	if cfg.ttl != 0 {
		return nil, fmt.Errorf("%w: WithTTL does not apply to a service session: its life is the heartbeat lease", ErrInvalidRequest)
	}
	if cfg.err != nil {
		// A refused option (WithParent(nil), say) says what is wrong with
		// it, before the parent checks below read the options.
		return nil, cfg.err
	}
	narrow := cfg.grant != nil && cfg.grant.mode == grantNarrow
	if _, bound := FromContext(ctx); narrow && cfg.parent == nil && (cfg.noParent || !bound) {
		return nil, fmt.Errorf("%w: a narrowed service needs a parent service: start it with SpawnService, then spawn this one from its Context or name it with WithParent", ErrNarrowNeedsParent)
	}
	if cfg.parent == nil && !cfg.noParent {
		if a, ok := FromContext(ctx); ok && !a.service {
			if narrow {
				return nil, fmt.Errorf("%w: the session bound to the context (%s) is not a service this process holds, and a task cannot parent a service (its end would end the service); spawn the service from a service's Context, or name a service parent with WithParent",
					ErrNarrowNeedsParent, a.sessionID)
			}
			opts = append(opts[:len(opts):len(opts)], WithoutParent())
		}
	}

	sent := time.Now()
	st, err := c.start(ctx, wire.LifecycleService, opts)
	if err != nil {
		return nil, err
	}
	ses := st.session
	gen := int64(ses.LeaseGeneration)
	deadline, leaseLen := startDeadline(ses, sent)
	status := ses.Status
	if ses.Replayed {
		// A replayed start returns the generation and deadline of the
		// original answer, stale if the session was attached since
		// (PROTOCOL §4.2): take the lease over to learn the current ones.
		sent = time.Now()
		defer c.beginAcquire(ses.AgentSessionID)()
		lr, date, lerr := c.coord.Lease(ctx, ses.AgentSessionID)
		if lerr != nil {
			// A suspended session (its holder's lease ran out) is left for
			// a resume; one that is gone has nothing left to retire. One
			// replayed under the caller's key may be held by the call that
			// started it, with the generation it would be retired with.
			if lease.Classify(lerr) == lease.Transient {
				if cfg.idemKey != "" {
					return nil, fmt.Errorf("caracal: service %s, replayed under the given idempotency key: acquiring the lease (left running; the call that started it may hold it, or retry): %w", ses.AgentSessionID, lerr)
				}
				c.retireReplayed(ctx, ses.AgentSessionID, gen)
			}
			return nil, fmt.Errorf("caracal: service %s: acquiring the lease after a replayed start: %w", ses.AgentSessionID, lerr)
		}
		gen = int64(lr.LeaseGeneration)
		c.fenceHeld(ses.AgentSessionID, gen)
		deadline = acquiredDeadline(lr.HeartbeatDeadlineAt, date, sent, leaseLen)
		status = lr.Status
	}
	if gen < 1 || deadline.IsZero() {
		c.retireUnhanded(ctx, ses.AgentSessionID, gen)
		return nil, fmt.Errorf("caracal: service %s: the Coordinator's start answer has no lease (generation %d, deadline %.64q); is it a Caracal v1 Coordinator?",
			ses.AgentSessionID, gen, deref(ses.HeartbeatDeadlineAt))
	}
	st.agent.service = true
	svc := c.newService(ctx, st.agent, cfg.service, gen, deadline, leaseLen, status)
	if st.parent != nil {
		svc.parentLife = st.parent.life
	}
	return c.hand(ctx, svc)
}

// retireReplayed retires a replayed service whose lease this call failed to
// take over. The failed acquire may have executed, its answer lost, and
// moved the generation on: when the retire is fenced, the lease is taken
// once more and the session retired with the generation that returns.
func (c *Client) retireReplayed(ctx context.Context, id string, gen int64) {
	err := c.retireOrphan(ctx, id, gen)
	if err == nil || lease.Classify(err) != lease.Fenced {
		c.keepUnretired(err)
		return
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), retireBound)
	defer cancel()
	lr, _, err := c.coord.Lease(lctx, id)
	if err != nil {
		c.log.WarnContext(ctx, "caracal: taking over a replayed service to retire it failed", "session", id, "error", err)
		c.keepUnretired(fmt.Errorf("caracal: retiring session %s: taking its lease over: %w", id, err))
		return
	}
	c.retireUnhanded(ctx, id, int64(lr.LeaseGeneration))
}

// hand registers s with the client and starts it. If the client closed or
// ctx ended meanwhile, it ends s, retires the session and fails instead.
// Registering first means Client.Close can never miss a running handle; a
// handle it closes before begin simply never starts its timers.
func (c *Client) hand(ctx context.Context, s *Service) (*Service, error) {
	err := context.Cause(ctx)
	if err == nil {
		err = c.track(s)
	}
	if err != nil {
		s.end(err)
		rerr := c.retireOrphan(ctx, s.id, s.generation)
		if errors.Is(err, ErrClosed) {
			return nil, c.unhanded(rerr)
		}
		if rerr != nil {
			c.keepUnretired(rerr)
			return nil, fmt.Errorf("%w; %w", err, rerr)
		}
		return nil, err
	}
	// An acquire of a newer generation whose handle was registered before
	// this one (its answer came first) found this handle not yet there.
	c.fenceStale(s.id)
	s.begin(ctx)
	return s, nil
}

func (c *Client) newService(ctx context.Context, agent *Agent, sc serviceConfig, gen int64, deadline time.Time, leaseLen time.Duration, status string) *Service {
	s := &Service{
		c:          c,
		id:         agent.sessionID,
		agent:      agent,
		log:        c.log.With("service", agent.sessionID),
		sc:         sc,
		deadline:   deadline,
		leaseLen:   leaseLen,
		generation: gen,
		status:     status,
		done:       make(chan struct{}),
		closed:     make(chan struct{}),
	}
	agent.done = s.done
	s.ctx, s.cancel = context.WithCancelCause(NewContext(ctx, agent))
	agent.life = s.ctx
	s.stop, s.halt = context.WithCancel(context.Background())
	return s
}

// begin starts the deadline timer, the renewal timer (if any) and the watch
// on the start context.
func (s *Service) begin(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return // Client.Close got here first
	}
	s.expiry = time.AfterFunc(time.Until(s.deadline), s.expire)
	if s.sc.background {
		s.tick = time.AfterFunc(lease.RenewDelay(s.sc.interval, time.Until(s.deadline), rand.Float64()), s.fire)
	}
	// AfterFunc runs the shutdown in its own goroutine, never under s.mu.
	s.unwatch = context.AfterFunc(ctx, func() {
		s.shutdown(context.WithoutCancel(ctx), context.Cause(ctx))
	})
	if p := s.parentLife; p != nil {
		// The parent's end ends the service as ctx's would, also when ctx
		// does not derive from the parent's Context (WithParent).
		s.unparent = context.AfterFunc(p, func() {
			s.shutdown(context.WithoutCancel(ctx), context.Cause(p))
		})
	}
}

// ID returns the service session id (agent_session_id); persist it to
// AttachService after a restart.
func (s *Service) ID() string { return s.id }

// Agent returns the service's agent identity.
func (s *Service) Agent() *Agent { return s.agent }

// Context returns a context carrying the service's agent, derived from the
// context the service was started with. It is cancelled when the service
// ends; context.Cause tells why (see Service).
func (s *Service) Context() context.Context { return s.ctx }

// Deadline returns the current local lease deadline.
func (s *Service) Deadline() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deadline
}

// Generation returns the lease generation this handle holds.
func (s *Service) Generation() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.generation
}

// Status returns the session status last reported by the Coordinator
// ("active" or "suspended"). Whether the handle is still live is told by
// Done and Err.
func (s *Service) Status() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Done returns a channel closed when the handle ends: the lease is lost, or
// the service is closed or its start context cancelled.
func (s *Service) Done() <-chan struct{} { return s.done }

// Err returns nil while the handle is live, then why it ended: the same
// error as context.Cause(s.Context()).
func (s *Service) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// current returns the lease as the handle knows it.
func (s *Service) current() Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leaseLocked()
}

func (s *Service) leaseLocked() Lease {
	return Lease{Deadline: s.deadline, Generation: s.generation, Status: s.status}
}

// Close stops renewing, waits for a renewal in progress to stop and retires
// the session with its lease generation, on a context detached from ctx's
// cancellation and bounded to 10 s. It returns by ctx's deadline even while a
// heartbeat is in flight (the heartbeat is cancelled); the retire then goes on
// in the background for at most 10 s, and the error wraps ctx's cause. Close
// is idempotent: every call that waits to the end returns the outcome of the
// one close.
//
// A handle whose own lease was fenced or whose session is gone is not
// retired (it no longer owns anything), and its Close returns nil; a
// suspended or expired one is, unless a newer holder has attached meanwhile,
// and so is a child that ended with its parent's loss. The loss itself is
// reported by Err, not by Close.
func (s *Service) Close(ctx context.Context) error {
	if err := s.check(ctx, "Close"); err != nil {
		return err
	}
	ctx, stop := closeBound(ctx)
	defer stop()
	if s.claimClose() {
		// End the handle before returning, even by a ctx already done:
		// nothing renews, and no loss is reported, once Close returned.
		s.end(ErrSessionClosed)
		go s.closeSequence(context.WithoutCancel(ctx), ErrSessionClosed)
	} else {
		// Another closer claimed the sequence, and ends the handle right
		// after claiming it: wait for that, so that this Close too
		// returns only once nothing renews.
		<-s.done
	}
	return waitClosed(ctx, s.closed, &s.closeErr, "service "+s.id)
}

// shutdown is the start context's cancellation: close as Close would. When
// the start context is a parent service's that lost its lease, the handle
// ends with the parent's reason but is not retired then: a suspended subtree
// resumes as a whole. Its own lease is intact, so Close still retires it (a
// subtree the Coordinator ended answers that the session is gone).
func (s *Service) shutdown(detached context.Context, cause error) {
	if leaseLoss(cause) {
		s.endWith(cause, true)
		return
	}
	if s.claimClose() {
		s.closeSequence(detached, cause)
	}
}

// claimClose reports whether the caller is the one to run the close
// sequence. (Not a sync.Once: a second Close must not block behind the first
// one's retire, it must return by its own ctx's deadline.)
func (s *Service) claimClose() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.closing = true
	return true
}

func (s *Service) closeSequence(detached context.Context, cause error) {
	defer close(s.closed)
	defer func() {
		// A service left running stays with the client, whose Close
		// reports it: nobody else may learn of it (a retire after the
		// start context ended, or after a Close that returned by its ctx's
		// deadline).
		if s.closeErr == nil {
			s.c.untrack(s)
		}
	}()
	s.end(cause)
	s.mu.Lock()
	unwatch, unparent := s.unwatch, s.unparent
	s.mu.Unlock()
	if unwatch != nil {
		unwatch()
	}
	if unparent != nil {
		unparent()
	}
	// No renewal step starts once the handle ended; wait for one in
	// progress (end cancelled its call).
	s.ticking.Wait()
	s.mu.Lock()
	reason, gen, inherited := s.err, s.generation, s.inherited
	s.mu.Unlock()
	if !inherited && !retirable(reason) {
		return
	}
	rctx, cancel := context.WithTimeout(detached, retireBound)
	defer cancel()
	err := s.c.coord.Retire(rctx, s.id, gen)
	switch {
	case err == nil:
		s.c.endRetired(s.id, s)
	case lease.Classify(err) == lease.Fenced:
		// Another holder attached since this handle last renewed (it may
		// have been suspended and resumed): the session is not this
		// handle's to retire.
		s.log.Info("caracal: service was taken over by a newer holder; not retired", "error", err)
	default:
		s.closeErr = fmt.Errorf("caracal: retiring service %s: %w", s.id, err)
	}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
