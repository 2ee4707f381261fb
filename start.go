package caracal

// Starting a session on the Coordinator: the steps Spawn and SpawnService
// share (parent resolution, the start request, the grant, retiring an
// orphan when the grant fails).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caracal-go/caracal/internal/coordclient"
	"github.com/caracal-go/caracal/internal/envelope"
	"github.com/caracal-go/caracal/internal/wire"
)

// started is what start hands Spawn and SpawnService.
type started struct {
	session wire.Session // Replayed marks an idempotent replay
	agent   *Agent
	parent  *Agent   // nil for a root session
	labels  []string // as the Coordinator stored them
}

// start starts a session of the given lifecycle and applies its grant. It
// resolves the parent, checks every option and the grant locally first, so
// that nothing is started when the request is knowably invalid. If the grant
// needs a delegation and creating it fails, the new session is retired
// before start returns the error: a failed start never leaves a session
// behind.
func (c *Client) start(ctx context.Context, lifecycle string, opts []SpawnOption) (started, error) {
	cfg := newSpawnConfig(opts)
	if cfg.err != nil {
		return started{}, cfg.err
	}
	if lifecycle == wire.LifecycleTask {
		if err := cfg.service.checkTask(); err != nil {
			return started{}, err
		}
	}
	parent, err := c.resolveParent(ctx, cfg)
	if err != nil {
		return started{}, err
	}
	grant := Grant.Inherit()
	if cfg.grant != nil {
		grant = *cfg.grant
	}

	req := wire.StartSessionRequest{
		ApplicationID:   c.cfg.ApplicationID,
		Labels:          cfg.labels,
		ParentAuthority: wire.AuthorityInherit,
	}
	childTTL := cfg.ttl
	switch lifecycle {
	case wire.LifecycleTask:
		if childTTL == 0 {
			childTTL = c.cfg.DefaultTTL
		}
		if childTTL > 0 {
			req.TTLSeconds = ceilSeconds(childTTL)
		} else {
			childTTL = defaultTaskTTL
		}
	case wire.LifecycleService:
		req.Lifecycle = wire.LifecycleService
		childTTL = defaultServiceGrantTTL
	}
	if grant.mode != grantInherit {
		req.ParentAuthority = wire.AuthorityNone
	}
	var plan *narrowPlan
	if grant.mode == grantNarrow {
		if parent == nil {
			return started{}, ErrNarrowNeedsParent
		}
		p, err := c.planNarrow(grant, parent, childTTL)
		if err != nil {
			return started{}, err
		}
		plan = &p
	}
	if parent != nil {
		req.ParentID = parent.sessionID
		if grant.mode == grantInherit {
			// The child inherits the edge the parent's context presents;
			// a parent that accepted a second delegation would otherwise
			// be refused as ambiguous (PROTOCOL §6.2).
			req.InheritParentEdgeID = parent.delegationID
		}
	}
	if cfg.metadata != nil {
		b, err := json.Marshal(cfg.metadata)
		if err != nil {
			return started{}, fmt.Errorf("%w: WithMetadata: %w", ErrInvalidRequest, err)
		}
		req.Metadata = b
	}

	traceID, flags, state := cfg.traceID, "", ""
	var baggage []envelope.Member
	if parent != nil {
		if traceID == "" {
			traceID = parent.traceID
		}
		flags, state, baggage = parent.traceFlags, parent.traceState, parent.baggage
	}
	if !envelope.ValidTraceID(traceID) {
		traceID = envelope.NewTraceID()
	}
	so := coordclient.StartOptions{
		IdempotencyKey: cfg.idemKey,
		Traceparent:    envelope.Traceparent(traceID, flags),
		Tracestate:     state,
		Abandon:        c.retireAbandoned,
	}

	ses, err := c.coord.Start(ctx, req, so)
	if err != nil {
		what := "session"
		if lifecycle == wire.LifecycleService {
			what = "service"
		}
		var e *Error
		if parent != nil && errors.As(err, &e) && e.Code == "parent_not_found" {
			// The parent may still look alive here: its TTL ran out, or
			// an operator ended or suspended it.
			return started{}, fmt.Errorf("caracal: starting a %s: parent session %s is not active on the Coordinator (its TTL ran out, or it was ended or suspended); spawn under a session that is still active: %w", what, parent.sessionID, err)
		}
		return started{}, fmt.Errorf("caracal: starting a %s: %w", what, err)
	}
	agent := &Agent{
		zoneID:          c.cfg.ZoneID,
		applicationID:   c.cfg.ApplicationID,
		sessionID:       ses.AgentSessionID,
		subjectRecordID: ses.SubjectAuthorityRecordID,
		traceID:         traceID,
		traceFlags:      flags,
		traceState:      state,
		baggage:         baggage,
		own:             true,
		retired:         new(atomic.Bool),
	}
	if parent != nil {
		agent.up = parent
		agent.parentDelegationID = parent.delegationID
		agent.hop = parent.hop
		if parent.subjectRecordID != "" {
			agent.subjectRecordID = parent.subjectRecordID
		}
	}
	st := started{session: ses, agent: agent, parent: parent, labels: ses.Labels}
	if st.labels == nil {
		st.labels = req.Labels
	}
	// Shared with the Session, which never changes them; empty, not nil,
	// when the session has none.
	agent.labels = st.labels
	if agent.labels == nil {
		agent.labels = []string{}
	}

	switch grant.mode {
	case grantInherit:
		if ses.DelegationEdgeID != nil && *ses.DelegationEdgeID != "" {
			agent.delegationID = *ses.DelegationEdgeID
			agent.hop++
			if parent != nil {
				agent.edge = parent.edge.mirrored()
			}
		}
	case grantNarrow:
		var d wire.Delegation
		var sent time.Time // of the create, when this call makes it
		found := false
		if ses.Replayed {
			// The start was a replay of an earlier one (same idempotency
			// key), which may have narrowed the session already: a second
			// edge would leave it two inbound edges, and its own
			// delegations ambiguous.
			d, found, err = c.narrowedBefore(ctx, ses.AgentSessionID, parent, plan)
		}
		if err == nil && !found {
			// Checked again: a TTL fitted inside the parent's delegation
			// before the start must still fit now that the start is done.
			var p narrowPlan
			if p, err = c.planNarrow(grant, parent, childTTL); err == nil {
				plan = &p
				sent = time.Now()
				d, err = c.coord.Delegate(ctx, plan.request(parent, ses.AgentSessionID, c.cfg.ApplicationID), "")
			}
		}
		if err != nil {
			if ses.Replayed && cfg.idemKey != "" {
				// Replayed under the caller's key: an earlier call started
				// this session and may still hold it (its generation too
				// may have moved on), so it is not retired from under it.
				return started{}, fmt.Errorf("caracal: narrowing the session %s, replayed under the given idempotency key, to %q on %s (left running; close it from the call that started it, or retry): %w",
					ses.AgentSessionID, wire.JoinScopes(plan.scopes), strings.Join(plan.resources, ", "), err)
			}
			rerr := c.retireUnhanded(ctx, ses.AgentSessionID, int64(ses.LeaseGeneration))
			return started{}, fmt.Errorf("caracal: narrowing the new session %s to %q on %s (%s): %s%w",
				ses.AgentSessionID, wire.JoinScopes(plan.scopes), strings.Join(plan.resources, ", "), retiredAgain(rerr), delegateAdvice(err, c.cfg.ApplicationID), err)
		}
		agent.delegationID = d.DelegationEdgeID
		agent.hop++
		agent.edge = plan.granted(d, sent)
	}
	return st, nil
}

// narrowedBefore finds an active edge from parent to the session child that
// matches plan, as an earlier start with the same key would have created.
func (c *Client) narrowedBefore(ctx context.Context, child string, parent *Agent, plan *narrowPlan) (wire.Delegation, bool, error) {
	edges, err := c.coord.InboundEdges(ctx, child)
	if err != nil {
		return wire.Delegation{}, false, err
	}
	now := time.Now()
	for _, e := range edges {
		exp, err := wire.ParseTime(e.ExpiresAt)
		if e.Status == wire.StatusActive && err == nil && exp.After(now) &&
			e.SourceSessionID == parent.sessionID && e.IssuerApplicationID == parent.applicationID &&
			slices.Equal(wire.NormalizeScopes(e.Scopes), plan.scopes) {
			return e, true, nil
		}
	}
	return wire.Delegation{}, false, nil
}

// resolveParent picks the parent: WithParent, else the agent bound to ctx,
// unless WithoutParent.
func (c *Client) resolveParent(ctx context.Context, cfg spawnConfig) (*Agent, error) {
	bound, _ := FromContext(ctx)
	if cfg.noParent {
		if cfg.parent != nil {
			return nil, fmt.Errorf("%w: WithParent and WithoutParent contradict each other", ErrInvalidRequest)
		}
		return nil, nil
	}
	p := bound
	if cfg.parent != nil {
		if bound != nil && bound.sessionID != cfg.parent.sessionID {
			return nil, fmt.Errorf("%w: WithParent names session %s but the context binds session %s; spawn from the parent's context or from one without a bound agent",
				ErrInvalidRequest, cfg.parent.sessionID, bound.sessionID)
		}
		p = cfg.parent
	}
	if p == nil {
		return nil, nil
	}
	if err := p.closedErr(); err != nil {
		return nil, fmt.Errorf("caracal: the parent session: %w", err)
	}
	if p.life != nil && p.life.Err() != nil {
		// The child's Context would end at once with its parent's: start
		// nothing rather than a session no handle can use.
		return nil, fmt.Errorf("caracal: the parent session %s: its Context ended (%w), and a child's Context ends with its parent's, so nothing was started; spawn under a parent whose Context is live, or pass WithoutParent: %w",
			p.sessionID, context.Cause(p.life), ErrSessionClosed)
	}
	if p.sessionID == "" {
		return nil, fmt.Errorf("%w: the parent agent has no session id (an inbound context without Caracal baggage?); pass WithoutParent to start a root session", ErrInvalidRequest)
	}
	if p.zoneID != "" && p.zoneID != c.cfg.ZoneID || p.applicationID != "" && p.applicationID != c.cfg.ApplicationID {
		return nil, fmt.Errorf("%w: the parent session %s belongs to application %s in zone %s, not to this client's %s in %s; pass WithoutParent to start a root session",
			ErrInvalidRequest, p.sessionID, p.applicationID, p.zoneID, c.cfg.ApplicationID, c.cfg.ZoneID)
	}
	return p, nil
}

// retireUnhanded is retireOrphan as the last attempt on a session nobody
// will hold: a failure is kept for Client.Close to report.
func (c *Client) retireUnhanded(ctx context.Context, id string, generation int64) error {
	err := c.retireOrphan(ctx, id, generation)
	c.keepUnretired(err)
	return err
}

// retiredAgain says, for the error of a call that failed after starting a
// session, how the retire of that session went.
func retiredAgain(retireErr error) string {
	if retireErr != nil {
		return "retiring it failed too, which Client.Close reports: " + retireErr.Error()
	}
	return "retired again"
}

// retireOrphan retires a session this call started but cannot hand out,
// detached from ctx's cancellation and bounded.
func (c *Client) retireOrphan(ctx context.Context, id string, generation int64) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), retireBound)
	defer cancel()
	if err := c.coord.Retire(rctx, id, generation); err != nil {
		c.log.WarnContext(ctx, "caracal: retiring a session that could not be handed out failed", "session", id, "error", err)
		return fmt.Errorf("caracal: retiring session %s: %w", id, err)
	}
	return nil
}

// abandoned is the retire of a session whose start was given up
// (coordclient.StartOptions.Abandon), running in the background so that
// Spawn returns at once; Client.Close waits for it.
type abandoned struct{ done chan struct{} }

func (a *abandoned) Close(ctx context.Context) error {
	select {
	case <-a.done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// retireAbandoned runs retire in the background, detached from ctx, or at
// once when the client is closed (nothing would wait for it then). Nobody
// else learns of a failure of that retire, so Close reports it.
func (c *Client) retireAbandoned(retire func(context.Context) error) {
	a := &abandoned{done: make(chan struct{})}
	if c.track(a) != nil {
		c.keepUnretired(retire(context.Background()))
		return
	}
	go func() {
		defer c.untrack(a)
		defer close(a.done)
		c.keepUnretired(retire(context.Background()))
	}()
}

func ceilSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}
