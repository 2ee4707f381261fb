package caracal

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/caracal-go/caracal/internal/coordclient"
	"github.com/caracal-go/caracal/internal/wire"
)

// Delegation is a delegation edge created by Delegate.
type Delegation struct {
	// ID is the delegation edge id; hand it to the receiving session's
	// process, which binds it with AcceptDelegation.
	ID string
	// Scopes are the delegated scopes.
	Scopes []string
	// ExpiresAt is when the delegation ends.
	ExpiresAt time.Time
	// Resource is the resource identifier the delegation is scoped to (the
	// first, when several are).
	Resource string
	// TargetSessionID is the receiving session.
	TargetSessionID string
}

// DelegateOption configures Delegate.
type DelegateOption func(*delegateConfig)

type delegateConfig struct {
	receiver string
}

// ToApplication names the receiving session's application when it is not
// the caller's own. The receiver can mint only for resources its own
// application owns in the zone's policy.
func ToApplication(applicationID string) DelegateOption {
	return func(c *delegateConfig) { c.receiver = applicationID }
}

// noDelegationAgentError is returned by Delegate and AcceptDelegation when
// ctx carries no agent. It matches ErrNoSession, whose own advice
// (AsApplication) does not apply: a delegation runs between two sessions.
type noDelegationAgentError struct{ op, agent string }

func (e noDelegationAgentError) Error() string {
	return "caracal: " + e.op + " acts for the agent bound to ctx, and none is: pass the Context of " + e.agent
}

func (noDelegationAgentError) Is(target error) bool { return target == ErrNoSession }

// Delegate grants part of the authority of the agent bound to ctx to another,
// existing session (toSessionID), which binds it with AcceptDelegation. grant
// must be a Grant.Narrow with a TTL or an expiry. The caller's own context is
// unchanged. The request carries a random idempotency key and is retried
// once after a transient failure. An agent whose session ended (see
// Headers) delegates nothing: ErrSessionClosed, before any call; nor does
// one with no session id (bound by a Middleware that verifies nothing):
// ErrInvalidRequest.
//
// When ctx ends while the request is in flight, the delegation may have been
// created all the same: it then holds until it expires, and calling Delegate
// again creates a second one. It is not revoked for you, since revoking an
// edge also ends the receiving session (PROTOCOL §4.8). It shows in the
// Coordinator's list of the receiving session's inbound delegations
// (GET /zones/{zone}/delegations/inbound/{session}).
func (c *Client) Delegate(ctx context.Context, toSessionID string, grant Authority, opts ...DelegateOption) (Delegation, error) {
	if err := c.check(ctx, "Delegate", true); err != nil {
		return Delegation{}, err
	}
	src, ok := FromContext(ctx)
	if !ok {
		return Delegation{}, noDelegationAgentError{"Delegate", "the session or service whose authority it grants"}
	}
	if err := src.closedErr(); err != nil {
		return Delegation{}, err
	}
	if src.sessionID == "" {
		return Delegation{}, noSessionID("Delegate")
	}
	if grant.mode != grantNarrow {
		return Delegation{}, invalidGrant("Delegate takes a Grant.Narrow, not Grant.%s", strings.ToUpper(grant.String()[:1])+grant.String()[1:])
	}
	if toSessionID == "" {
		return Delegation{}, invalidGrant("Delegate needs the receiving session's id")
	}
	toSessionID, err := callerID("Delegate", toSessionID)
	if err != nil {
		return Delegation{}, err
	}
	if toSessionID == src.sessionID {
		return Delegation{}, invalidGrant("a session cannot delegate to itself")
	}
	if src.applicationID != c.cfg.ApplicationID || src.zoneID != c.cfg.ZoneID {
		return Delegation{}, invalidGrant("the bound session %s belongs to application %s, not to this client's %s; only the issuer's application can delegate from it",
			src.sessionID, src.applicationID, c.cfg.ApplicationID)
	}
	dc := delegateConfig{receiver: c.cfg.ApplicationID}
	apply(&dc, opts)
	plan, err := c.planNarrow(grant, src, 0)
	if err != nil {
		return Delegation{}, err
	}
	req := plan.request(src, toSessionID, dc.receiver)
	d, err := c.coord.Delegate(ctx, req, coordclient.NewIdempotencyKey())
	if err != nil {
		return Delegation{}, fmt.Errorf("caracal: delegating %q on %s from session %s to session %s: %s%w",
			wire.JoinScopes(plan.scopes), strings.Join(plan.resources, ", "), src.sessionID, toSessionID, delegateAdvice(err, dc.receiver), err)
	}
	parent := ""
	if d.ParentEdgeID != nil {
		parent = *d.ParentEdgeID
	}
	c.receivedBy(toSessionID, d.DelegationEdgeID, parent)
	// The resource_id, when there is one, is what scopes the edge.
	out := Delegation{ID: d.DelegationEdgeID, Scopes: slices.Clone(d.Scopes), TargetSessionID: toSessionID, Resource: cmp.Or(plan.resource, plan.resources[0])}
	if len(out.Scopes) == 0 {
		out.Scopes = slices.Clone(plan.scopes)
	}
	if t, err := wire.ParseTime(d.ExpiresAt); err == nil {
		out.ExpiresAt = t
	}
	return out, nil
}

// AcceptOption configures AcceptDelegation.
type AcceptOption func(*acceptConfig)

type acceptConfig struct {
	skipCheck bool
}

// SkipInboundCheck makes AcceptDelegation bind the edge without asking the
// Coordinator first; the STS still checks it at every mint.
func SkipInboundCheck() AcceptOption {
	return func(c *acceptConfig) { c.skipCheck = true }
}

// AcceptDelegation binds a delegation edge another session granted to the
// agent bound to ctx (see Delegate) and returns a context whose agent
// presents it: its delegation becomes edgeID, the previous one its parent
// edge, and its hop count grows by one. (Hop then counts the edges this
// process knows of; the edge may sit deeper in the delegator's chain, which
// the STS counts at every mint, and the resource token's hop says.) An edge
// ctx already presents is checked again, and ctx is returned unchanged; an
// agent whose session ended gets ErrSessionClosed before any call, and one
// with no session id ErrInvalidRequest.
// First it checks with the Coordinator that edgeID is an active delegation
// to this session for this application (ErrNotFound otherwise), unless
// SkipInboundCheck is given.
func (c *Client) AcceptDelegation(ctx context.Context, edgeID string, opts ...AcceptOption) (context.Context, error) {
	if err := c.check(ctx, "AcceptDelegation", true); err != nil {
		return nil, err
	}
	a, ok := FromContext(ctx)
	if !ok {
		return nil, noDelegationAgentError{"AcceptDelegation", "the session or service the delegation was granted to"}
	}
	if err := a.closedErr(); err != nil {
		return nil, err
	}
	if a.sessionID == "" {
		return nil, noSessionID("AcceptDelegation")
	}
	if edgeID == "" {
		return nil, invalidGrant("AcceptDelegation needs the delegation id")
	}
	edgeID, err := callerID("AcceptDelegation", edgeID)
	if err != nil {
		return nil, err
	}
	var ac acceptConfig
	apply(&ac, opts)
	if !ac.skipCheck {
		st, err := c.coord.InboundEdge(ctx, a.sessionID, edgeID)
		switch {
		case errors.Is(err, ErrNotFound):
			return nil, fmt.Errorf("caracal: delegation %s is not an active delegation to session %s of this application: %w", edgeID, a.sessionID, err)
		case err != nil && ctx.Err() != nil:
			return nil, fmt.Errorf("caracal: checking delegation %s with the Coordinator: %w", edgeID, err)
		case err != nil:
			return nil, fmt.Errorf("caracal: checking delegation %s with the Coordinator failed (try again, or pass SkipInboundCheck to leave the check to the STS): %w", edgeID, err)
		}
		if st.Status != "" && st.Status != wire.StatusActive {
			return nil, fmt.Errorf("caracal: delegation %s is %.64q, not active: %w", edgeID, st.Status, ErrNotFound)
		}
	}
	if edgeID == a.delegationID {
		return ctx, nil // already presented: nothing changes
	}
	c.receivedBy(a.sessionID, edgeID, "")
	b := *a
	b.parentDelegationID = a.delegationID
	b.delegationID = edgeID
	b.hop = a.hop + 1
	b.edge = nil   // its limits are not known here
	b.scopes = nil // the inbound token's scopes were for the other edge
	return NewContext(ctx, &b), nil
}

// noSessionID refuses an agent that names no session (one bound by a
// Middleware that verifies nothing): a delegation has no session to come
// from or to be bound to. op names the method for the error.
func noSessionID(op string) error {
	return fmt.Errorf("%w: %s: the agent bound to the context has no session id (an inbound context without a verified token or Caracal baggage?)", ErrInvalidRequest, op)
}

// callerID returns an id a caller gave in the form it is sent and compared
// in (a UUID in lower case, see wire.CanonicalID). One that does not have
// the form of the ids Caracal issues is refused with ErrInvalidRequest
// before any call: the Coordinator would refuse it (400 invalid_params), and
// as it is it would reach request paths, a bound context, and every message
// and log line that names it. op names the method for the error.
func callerID(op, id string) (string, error) {
	if !wire.ValidID(id) {
		return "", fmt.Errorf("%w: %s: %.64q is not a Caracal id", ErrInvalidRequest, op, id)
	}
	return wire.CanonicalID(id), nil
}

// delegateAdvice says what to do about a Coordinator refusal of a
// delegation whose cause is known ("" otherwise), ending in ": ".
func delegateAdvice(err error, receiver string) string {
	var e *Error
	if !errors.As(err, &e) {
		return ""
	}
	switch e.Code {
	case "delegation_application_mismatch":
		// The source is this client's own (Delegate checks it): the
		// receiving session belongs to another application.
		return "the receiving session is not of application " + receiver + "; name its application with ToApplication: "
	case "delegation_endpoint_not_found":
		// Either end may be the one gone: the Coordinator does not say.
		return "the source or the target session is not live on the Coordinator (it does not exist, ended, ran past its TTL or a service's lease, or is suspended); delegate between two active sessions: "
	}
	return ""
}
