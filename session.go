package caracal

import "context"

// Agent is the agent identity bound to a context.Context: the session, its
// delegation edge and the propagated trace envelope. It is immutable; the
// methods return copies.
type Agent struct {
	zoneID             string
	applicationID      string
	sessionID          string
	delegationID       string
	parentDelegationID string
	subjectRecordID    string
	traceID            string // 32 lowercase hex
	traceFlags         string // 2 hex
	traceState         string
	baggage            []baggageMember // non-caracal members, in order
	hop                int

	// token is the pinned bearer of an inbound context (middleware); empty
	// when own is set.
	token string
	// own marks a context this process created: Headers and the transport
	// resolve a fresh lifecycle token from the client instead of token.
	own bool
	// done, if non-nil, is closed when the session that created this
	// identity closes (mandate prefetch pools drop on it).
	done <-chan struct{}
}

// baggageMember is one non-Caracal W3C baggage member.
type baggageMember struct {
	Key, Value string
}

// ZoneID returns the zone.
func (a *Agent) ZoneID() string { return a.zoneID }

// ApplicationID returns the application.
func (a *Agent) ApplicationID() string { return a.applicationID }

// SessionID returns the Coordinator session id (agent_session_id).
func (a *Agent) SessionID() string { return a.sessionID }

// DelegationID returns the delegation edge the session presents, if any.
func (a *Agent) DelegationID() string { return a.delegationID }

// ParentDelegationID returns the parent's delegation edge, if any.
func (a *Agent) ParentDelegationID() string { return a.parentDelegationID }

// SubjectRecordID returns the subject authority record id, if known.
func (a *Agent) SubjectRecordID() string { return a.subjectRecordID }

// TraceID returns the W3C trace id (32 lowercase hex), if any.
func (a *Agent) TraceID() string { return a.traceID }

// Hop returns the delegation hop count (0 for a root session).
func (a *Agent) Hop() int { return a.hop }

type agentKey struct{}

// NewContext returns a copy of ctx carrying a. To hand an agent's identity to
// background work that must outlive the request, bind it on a context that is
// not cancelled with the request:
//
//	bg := caracal.NewContext(context.WithoutCancel(ctx), agent)
func NewContext(ctx context.Context, a *Agent) context.Context {
	return context.WithValue(ctx, agentKey{}, a)
}

// FromContext returns the agent bound to ctx, if any.
func FromContext(ctx context.Context) (*Agent, bool) {
	a, ok := ctx.Value(agentKey{}).(*Agent)
	return a, ok && a != nil
}
