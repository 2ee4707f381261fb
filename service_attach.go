package caracal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/caracal-go/caracal/internal/envelope"
)

// AttachService takes over a persisted service session by id (after a
// restart, or from another process): it acquires the lease, which bumps the
// generation and fences every older holder (their next heartbeat or retire
// fails with ErrLeaseFenced; a handle of this client on the session ends at
// once, as fenced). It accepts only the service options
// HeartbeatInterval, HeartbeatAuto and OnLeaseLost; any other option fails
// with ErrInvalidRequest. A suspended session cannot be attached
// (ErrSuspended): Client.Resume it first.
//
// The handle's agent carries no delegation edge: the Coordinator does not
// return it; re-present it with AcceptDelegation if the service was
// narrowed. The handle continues the trace bound to ctx, if any, or starts
// a new one. ctx bounds the attach and the service's life, as for
// SpawnService.
func (c *Client) AttachService(ctx context.Context, sessionID string, opts ...SpawnOption) (*Service, error) {
	if err := c.check(ctx, "AttachService", true); err != nil {
		return nil, err
	}
	if err := c.beginStart(); err != nil {
		return nil, err
	}
	defer c.endStart()
	if sessionID == "" {
		return nil, fmt.Errorf("%w: AttachService needs the session id", ErrInvalidRequest)
	}
	sessionID, err := callerID("AttachService", sessionID)
	if err != nil {
		return nil, err
	}
	cfg := newSpawnConfig(opts)
	if cfg.service.err != nil {
		return nil, cfg.service.err
	}
	if !serviceOnly(opts) {
		return nil, fmt.Errorf("%w: AttachService accepts only HeartbeatInterval, HeartbeatAuto and OnLeaseLost", ErrInvalidRequest)
	}
	sent := time.Now()
	defer c.beginAcquire(sessionID)()
	lr, date, err := c.coord.Lease(ctx, sessionID)
	if errors.Is(err, ErrSuspended) {
		return nil, fmt.Errorf("caracal: attaching service %s: it is suspended; Client.Resume it first: %w", sessionID, err)
	}
	if err != nil {
		return nil, fmt.Errorf("caracal: attaching service %s: %w", sessionID, err)
	}
	deadline := acquiredDeadline(lr.HeartbeatDeadlineAt, date, sent, 0)
	gen := int64(lr.LeaseGeneration)
	if gen < 1 || deadline.IsZero() {
		return nil, fmt.Errorf("caracal: attaching service %s: the Coordinator's answer has no lease (generation %d, deadline %.64q)", sessionID, gen, lr.HeartbeatDeadlineAt)
	}
	if c.holdsGeneration(sessionID, gen) {
		// Every acquire bumps the generation: this answer tells no lease.
		// The acquire still fenced every generation up to the one held.
		c.fenceHeld(sessionID, gen+1)
		return nil, fmt.Errorf("caracal: attaching service %s: the Coordinator answered generation %d, which this client already holds, for a lease acquire that bumps it: %w", sessionID, gen, ErrUnavailable)
	}
	c.fenceHeld(sessionID, gen)
	agent := c.attachedAgent(ctx, sessionID)
	return c.hand(ctx, c.newService(ctx, agent, cfg.service, gen, deadline, 0, lr.Status))
}

// fenceHeld ends, as fenced, this client's handles on the service id that
// hold a generation older than gen: the lease acquire that returned gen
// fenced them, so they can neither renew nor retire any more, and nothing
// else would tell them before their next heartbeat.
func (c *Client) fenceHeld(id string, gen int64) {
	c.mu.Lock()
	if a := c.acquiring[id]; a != nil {
		a.newest = max(a.newest, gen)
	}
	c.mu.Unlock()
	held := c.servicesOf(id)
	for _, s := range held {
		if s.Generation() < gen {
			s.lose(fmt.Errorf("caracal: service %s: this client acquired its lease again (generation %d); this handle no longer owns the session: %w", id, gen, takenOver{}))
		}
	}
}

// holdsGeneration reports whether a handle of this client on the service
// id holds gen, or a lease acquire of it in flight returned gen.
func (c *Client) holdsGeneration(id string, gen int64) bool {
	c.mu.Lock()
	a := c.acquiring[id]
	seen := a != nil && a.newest == gen
	c.mu.Unlock()
	return seen || slices.ContainsFunc(c.servicesOf(id), func(s *Service) bool { return s.Generation() == gen })
}

// fenceStale ends, as fenced, this client's handles on the service id that
// hold a generation older than the newest one it holds, or that an acquire
// returned while another one was in flight.
func (c *Client) fenceStale(id string) {
	held := c.servicesOf(id)
	var newest int64
	c.mu.Lock()
	if a := c.acquiring[id]; a != nil {
		newest = a.newest
	}
	c.mu.Unlock()
	for _, s := range held {
		newest = max(newest, s.Generation())
	}
	c.fenceHeld(id, newest)
}

// acquires is the state of a service id's lease acquires in flight.
type acquires struct {
	n      int   // acquires in flight
	newest int64 // the newest generation one returned meanwhile
}

// beginAcquire registers a lease acquire of the service id, until the
// returned func is called once the acquire's handle is handed out or it
// failed. While one is in flight the newest generation acquired is kept, so
// that its handle, when its answer came last, is fenced by a newer one even
// if that one's handle has closed since.
func (c *Client) beginAcquire(id string) (end func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acquiring == nil {
		c.acquiring = make(map[string]*acquires)
	}
	a := c.acquiring[id]
	if a == nil {
		a = &acquires{}
		c.acquiring[id] = a
	}
	a.n++
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if a.n--; a.n == 0 {
			delete(c.acquiring, id)
		}
	}
}

// indexService adds s to c.services. The caller holds c.mu.
func (c *Client) indexService(s *Service) {
	if c.services == nil {
		c.services = make(map[string][]*Service)
	}
	c.services[s.id] = append(c.services[s.id], s)
}

// unindexService removes s from c.services. The caller holds c.mu.
func (c *Client) unindexService(s *Service) {
	if held := slices.DeleteFunc(c.services[s.id], func(x *Service) bool { return x == s }); len(held) > 0 {
		c.services[s.id] = held
	} else {
		delete(c.services, s.id)
	}
}

// servicesOf returns this client's open handles on the service id.
func (c *Client) servicesOf(id string) []*Service {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.services[id])
}

// takenOver is why a handle fenced by its own client ended: like a
// session_lease_fenced answer, it matches ErrLeaseFenced and ErrLeaseLost.
type takenOver struct{}

func (takenOver) Error() string { return ErrLeaseFenced.Error() }

func (takenOver) Is(target error) bool { return target == ErrLeaseFenced || target == ErrLeaseLost }

// Resume resumes a suspended session (a service whose lease was lost, or a
// session an operator suspended) together with its suspended subtree, and
// reports how many sessions it resumed. The session must belong to the
// client's application. A service's deadline restarts at now plus the lease
// and its generation does not change; take the lease back with
// AttachService to run it again, since the handle that saw the suspension
// has ended. Resuming a session that is not suspended fails with an *Error
// that matches ErrConflict (code session_not_found_or_not_suspended).
func (c *Client) Resume(ctx context.Context, sessionID string) (int, error) {
	if err := c.check(ctx, "Resume", true); err != nil {
		return 0, err
	}
	if sessionID == "" {
		return 0, fmt.Errorf("%w: Resume needs the session id", ErrInvalidRequest)
	}
	sessionID, err := callerID("Resume", sessionID)
	if err != nil {
		return 0, err
	}
	n, err := c.coord.Resume(ctx, sessionID)
	if err != nil {
		return 0, fmt.Errorf("caracal: resuming session %s: %w", sessionID, err)
	}
	return n, nil
}

// attachedAgent is the identity of an attached service, without a
// delegation edge (the Coordinator does not return it). It continues the
// trace bound to ctx, or starts a new one.
func (c *Client) attachedAgent(ctx context.Context, sessionID string) *Agent {
	a := &Agent{
		zoneID:        c.cfg.ZoneID,
		applicationID: c.cfg.ApplicationID,
		sessionID:     sessionID,
		own:           true,
		service:       true,
		retired:       new(atomic.Bool),
	}
	if p, ok := FromContext(ctx); ok && envelope.ValidTraceID(p.traceID) {
		a.traceID, a.traceFlags, a.traceState = p.traceID, p.traceFlags, p.traceState
		a.baggage = p.baggage
	} else {
		a.traceID = envelope.NewTraceID()
	}
	return a
}
