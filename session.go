package caracal

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caracal-go/caracal/internal/envelope"
	"github.com/caracal-go/caracal/internal/wire"
)

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
	baggage            []envelope.Member // non-caracal members, in order; shared, never modified
	hop                int

	// token is the pinned bearer of an inbound context (middleware); nil
	// when own is set. It is behind a pointer so that fmt, printing an
	// Agent held in an unexported field (where Format is out of its
	// reach), shows an address, not the bearer.
	token *string
	// presented, set with a pinned token, records that the transport sent
	// it to the Gateway: a use=gateway token is good for one request, and
	// copies of the agent (AcceptDelegation) share the record.
	presented *atomic.Bool
	// own marks a context this process created: Headers and the transport
	// resolve a fresh lifecycle token from the client instead of token.
	own bool
	// done, if non-nil, is closed when the session that created this
	// identity closes (mandate prefetch pools drop on it).
	done <-chan struct{}
	// life, if non-nil, is the Context of the session this process holds
	// for this identity: its children end with it.
	life context.Context
	// up is the parent's agent when this process started the session
	// under one: the parent's end is this session's too (see closedErr).
	up *Agent
	// retired, for a session or service this process holds, is set (under
	// the client's mu) once its retire succeeded, so that a child whose
	// start was under way then ends as endRetired would have ended it.
	// Copies of the agent (AcceptDelegation) share it.
	retired *atomic.Bool
	// service marks the identity of a service session this process holds
	// (SpawnService, AttachService): only such a session parents a service.
	service bool
	// labels are the session's labels when this process started it; nil
	// when not known.
	labels []string
	// scopes are the scopes of the verified inbound token the agent was
	// bound from (Middleware with a verifier); nil otherwise.
	scopes []string
	// edge is what this process knows of the authority of delegationID
	// (set when this process created or mirrored the edge), so that a
	// narrowing that is knowably wider is refused before any call.
	edge *edgeGrant
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

// Scopes returns the scopes of the verified token the agent was bound from
// by Middleware with a verifier (VerifyTokens, WithVerifier), so that a
// handler can check the scopes its route needs (RequireScopes checks some
// for every route). It is nil for an agent bound by trusted propagation,
// which carries no scopes, for one that AcceptDelegation moved to another
// delegation, and for sessions this process holds. The slice is a copy.
func (a *Agent) Scopes() []string { return slices.Clone(a.scopes) }

// String describes the agent by its ids. The bearer an inbound agent carries
// is never shown.
func (a Agent) String() string {
	return fmt.Sprintf("caracal.Agent{zone=%s app=%s session=%s delegation=%s hop=%d}",
		a.zoneID, a.applicationID, a.sessionID, a.delegationID, a.hop)
}

// Format makes every fmt verb print String, so that no verb (%+v, %#v, %x,
// ...) reaches the bearer by reflection.
func (a Agent) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = io.WriteString(f, strconv.Quote(a.String()))
		return
	}
	_, _ = io.WriteString(f, a.String())
}

// bearer is the pinned bearer of an inbound context, or "".
func (a *Agent) bearer() string {
	if a.token == nil {
		return ""
	}
	return *a.token
}

type agentKey struct{}

// NewContext returns a copy of ctx carrying a; a nil a hides any agent ctx
// carries, so that FromContext reports none. To hand an agent's identity to
// background work that must outlive the request, bind it on a context that is
// not cancelled with the request:
//
//	bg := caracal.NewContext(context.WithoutCancel(ctx), agent)
func NewContext(ctx context.Context, a *Agent) context.Context {
	return context.WithValue(ctx, agentKey{}, a)
}

// FromContext returns the agent bound to ctx, if any.
func FromContext(ctx context.Context) (*Agent, bool) {
	if ctx == nil {
		return nil, false
	}
	a, ok := ctx.Value(agentKey{}).(*Agent)
	return a, ok && a != nil
}

// Limits of the Coordinator that Spawn checks before calling it.
const (
	maxLabels     = 32
	maxLabelLen   = 64
	maxTTL        = 24 * time.Hour
	maxIdemKeyLen = 255
	// retireBound bounds the detached retire of a closing session.
	retireBound = 10 * time.Second
	// defaultTaskTTL is the Coordinator's task TTL when none is sent.
	defaultTaskTTL = time.Hour
	// defaultServiceGrantTTL is a narrowed service's delegation lifetime
	// when Grant.Narrow gives none (a service has no TTL of its own).
	defaultServiceGrantTTL = 24 * time.Hour
)

// Session is a task session started by Spawn. Its Context carries the agent;
// Close retires it. It is safe for concurrent use.
type Session struct {
	c         *Client
	id        string
	agent     *Agent
	labels    []string
	expiresAt time.Time
	ctx       context.Context
	cancel    context.CancelCauseFunc
	done      chan struct{} // closed when Close begins (Agent.done)

	unparent  func() bool   // stops the watch on the parent's Context, if any
	endOnce   sync.Once     // ends the handle (endWith)
	closeOnce sync.Once     // starts the retire
	closed    chan struct{} // closed when the retire finished
	closeErr  error
}

// Spawn starts a task session and returns it. The session bound to ctx (see
// FromContext) is its parent unless WithParent or WithoutParent says
// otherwise; with no parent it is a root session. By default the child runs
// under its parent's effective authority (Grant.Inherit); WithGrant narrows
// or drops it.
//
// The caller must Close the session; Client.Close closes the ones left.
// Session.Context derives from ctx, so cancelling ctx cancels it too, but
// only Close (or the TTL) retires the session. It also ends, with the
// parent's cause, when the Context of the parent this process holds ends
// (its session ended, and the Coordinator ends the child with it, or the
// context it was spawned with was cancelled), even when ctx does not derive
// from it (WithParent); a parent already ended so is refused with
// ErrSessionClosed before any call. When Spawn fails (ctx ended, or the
// retries ran out) after the start may already have reached the
// Coordinator, the session it may have started is retired in the
// background (Client.Close waits for that, and reports it if that retire
// fails), unless WithIdempotencyKey gave the key that leads back to it. A
// start sent without a key (past the Coordinator's idempotency receipt
// limit) leaves nothing to find its session by: a warning is logged instead.
func (c *Client) Spawn(ctx context.Context, opts ...SpawnOption) (*Session, error) {
	if err := c.check(ctx, "Spawn", true); err != nil {
		return nil, err
	}
	if err := c.beginStart(); err != nil {
		return nil, err
	}
	defer c.endStart()
	sent := time.Now()
	st, err := c.start(ctx, wire.LifecycleTask, opts)
	if err != nil {
		return nil, err
	}
	s := &Session{
		c:      c,
		id:     st.session.AgentSessionID,
		agent:  st.agent,
		labels: st.labels,
		done:   make(chan struct{}),
		closed: make(chan struct{}),
	}
	ttl := defaultTaskTTL
	if st.session.TTLSeconds != nil && *st.session.TTLSeconds > 0 {
		// At most the Coordinator's limit: a larger count would wrap
		// around in nanoseconds.
		ttl = time.Duration(min(*st.session.TTLSeconds, int(maxTTL/time.Second))) * time.Second
	}
	// Counted from when the start was sent, on the local clock, so that it
	// is never later than the Coordinator's own expiry; a replayed start
	// began earlier, as its started_at says.
	s.expiresAt = sent.Add(ttl)
	if began, err := wire.ParseTime(st.session.StartedAt); err == nil && began.Add(ttl).Before(s.expiresAt) {
		s.expiresAt = began.Add(ttl)
	}
	st.agent.done = s.done
	s.ctx, s.cancel = context.WithCancelCause(NewContext(ctx, st.agent))
	st.agent.life = s.ctx
	if p := st.parent; p != nil && p.life != nil {
		// A parent's end ends its children on the Coordinator: the child's
		// Context ends with the parent's, also when ctx does not derive
		// from it (WithParent).
		s.unparent = context.AfterFunc(p.life, func() { s.cancel(context.Cause(p.life)) })
	}
	if err := c.track(s); err != nil {
		return nil, c.unhanded(s.Close(context.WithoutCancel(ctx)))
	}
	return s, nil
}

// ID returns the Coordinator session id.
func (s *Session) ID() string { return s.id }

// Agent returns the session's agent identity.
func (s *Session) Agent() *Agent { return s.agent }

// Context returns a context that carries the session's agent. It derives from
// the context given to Spawn and is cancelled, with cause ErrSessionClosed,
// when the session closes, or with its parent's cause when the Context of
// the parent this process holds ends. RevokeDelegation also ends it, with a
// cause matching ErrSessionClosed, when it held the revoked delegation or
// one made under it.
func (s *Session) Context() context.Context { return s.ctx }

// Labels returns the session's labels as the Coordinator stored them.
func (s *Session) Labels() []string { return append([]string(nil), s.labels...) }

// ExpiresAt returns when the session's TTL runs out (local clock, counted
// from when the start was sent).
func (s *Session) ExpiresAt() time.Time { return s.expiresAt }

// Close cancels the session's context and retires the session at the
// Coordinator, which also revokes its delegations and ends its child
// sessions. The retire runs on a context detached from ctx's cancellation
// and bounded to 10 s, so a session whose request was already cancelled is
// still retired; Close returns by ctx's deadline, leaving the retire to
// finish in the background (Client.Close waits for it). A session that is
// already gone counts as retired. Close is idempotent: every call that waits
// to the end returns the outcome of the one retire. Once retired, the
// session's other handles in this client (a Spawn replayed under the same
// WithIdempotencyKey) end too, as do the sessions started under it, which
// the Coordinator ended with it: their Close returns nil without a call.
// A ctx cancelled because a session ended (the session's own Context, even
// after a revoke or its parent's close ended it) does not cut the wait
// short; its deadline still does.
func (s *Session) Close(ctx context.Context) error {
	if s == nil || s.c == nil {
		return notFromSpawn("Session.Close", "Session", "Client.Spawn")
	}
	if ctx == nil {
		return nilContext("Session.Close")
	}
	ctx, stop := closeBound(ctx)
	defer stop()
	s.closeOnce.Do(func() {
		s.endWith(ErrSessionClosed)
		go s.retire(context.WithoutCancel(ctx))
	})
	return waitClosed(ctx, s.closed, &s.closeErr, "session "+s.id)
}

// endWith ends the handle, once: it stops watching its parent, cancels its
// Context with cause and marks its agent done.
func (s *Session) endWith(cause error) {
	s.endOnce.Do(func() {
		if s.unparent != nil {
			s.unparent()
		}
		s.cancel(cause)
		close(s.done)
	})
}

// notFromSpawn is the error of a handle method called on a nil or zero
// handle (a Spawn that failed, a Session{} literal) instead of one the
// client returned.
func notFromSpawn(method, handle, maker string) error {
	return fmt.Errorf("%w: %s on a nil or zero %s; use the *%s that %s returned (and check its error first)",
		ErrInvalidRequest, method, handle, handle, maker)
}

// waitClosed returns the outcome of a close sequence that stores *outcome
// and then closes closed, preferring a finished close over an ended ctx;
// when ctx ends first it says that the retire of what goes on in the
// background, and for how long at most.
func waitClosed(ctx context.Context, closed <-chan struct{}, outcome *error, what string) error {
	select {
	case <-closed:
		return *outcome
	default:
	}
	select {
	case <-closed:
		return *outcome
	case <-ctx.Done():
		return fmt.Errorf("caracal: %s: the retire continues in the background for at most %v: %w", what, retireBound, context.Cause(ctx))
	}
}

func (s *Session) retire(detached context.Context) {
	ctx, cancel := context.WithTimeout(detached, retireBound)
	defer cancel()
	if err := s.c.coord.Retire(ctx, s.id, 0); err != nil && s.c.failRetire(s, err) {
		return
	}
	s.c.untrack(s)
	s.c.endRetired(s.id, s)
	close(s.closed)
}

// failRetire records the failed retire of s, unless the retire of a twin
// or of a session s was started under succeeded meanwhile, which ended s
// on the Coordinator too: it then reports false, and s counts as retired.
// It reports true when it recorded the failure and closed s.
// Under c.mu, so that endRetired either sees s closed and lets it go, or
// has marked the retire that ended it before this looks.
func (c *Client) failRetire(s *Session, err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.agent.retired.Load() || retiredAncestor(s.agent) != "" {
		return false
	}
	// The session is left running: the client keeps the handle, so that
	// Client.Close reports it also when no Close waited for this outcome
	// (one that returned by its ctx's deadline).
	s.closeErr = fmt.Errorf("caracal: retiring session %s: %w", s.id, err)
	close(s.closed)
	return true
}

// HeadersOption configures Headers.
type HeadersOption func(*headersConfig)

type headersConfig struct {
	asApplication bool
}

// AsApplication lets Headers fall back to the application's own identity
// when no agent is bound to the context: a lifecycle bearer and a fresh
// traceparent. Use it only for trusted service-to-service calls; a bound
// agent always wins.
func AsApplication() HeadersOption {
	return func(c *headersConfig) { c.asApplication = true }
}

// Headers returns the outgoing headers that carry the agent bound to ctx to
// another service: traceparent, tracestate, baggage with the caracal.*
// members, and Authorization: Bearer with the agent's credential (a fresh
// lifecycle token for an agent this process started, the received token for
// an agent bound from an inbound request; none if it has none).
//
// The bearer is a lifecycle token, which the Coordinator accepts: send these
// headers only to services you trust, never to third parties. Calls to
// protected resources go through Transport, which mints a single-use mandate
// per request instead.
//
// With no bound agent Headers fails with ErrNoSession, unless AsApplication
// is given; for the agent of a session that was closed, that this process
// started under a parent session that was closed or ended, or that
// RevokeDelegation ended, with ErrSessionClosed; for a session another
// client of this process spawned for another application or zone, with
// ErrInvalidRequest.
func (c *Client) Headers(ctx context.Context, opts ...HeadersOption) (http.Header, error) {
	if err := c.check(ctx, "Headers", true); err != nil {
		return nil, err
	}
	var hc headersConfig
	apply(&hc, opts)
	a, ok := FromContext(ctx)
	if !ok && !hc.asApplication {
		return nil, ErrNoSession
	}
	if ok {
		if err := a.closedErr(); err != nil {
			return nil, err
		}
		if err := c.checkOwnApplication(a, "call Headers on the client that spawned it"); err != nil {
			return nil, err
		}
	}
	var bearer string
	switch {
	case !ok || a.own:
		tok, err := c.sts.Lifecycle(ctx)
		if err != nil {
			return nil, err
		}
		bearer = tok.Bearer()
	case a.bearer() != "":
		bearer = "Bearer " + a.bearer()
	}
	var e envelope.Envelope // the application's own: a fresh traceparent only
	if ok {
		e = agentEnvelope(a)
	}
	h := make(http.Header, 4)
	envelope.Inject(h, e, false)
	if bearer != "" {
		h["Authorization"] = []string{bearer}
	}
	return h, nil
}

// agentEnvelope is the propagated part of a, for Headers and the transport.
// It shares a's baggage: Inject only reads it, and an Agent never changes.
func agentEnvelope(a *Agent) envelope.Envelope {
	return envelope.Envelope{
		TraceID:            a.traceID,
		TraceFlags:         a.traceFlags,
		TraceState:         a.traceState,
		SessionID:          a.sessionID,
		DelegationID:       a.delegationID,
		ParentDelegationID: a.parentDelegationID,
		SubjectRecordID:    a.subjectRecordID,
		Hop:                a.hop,
		Baggage:            a.baggage,
	}
}

// checkOwnApplication refuses the agent of a session that another client of
// this process spawned for another application or zone: this client's
// lifecycle token cannot speak for it. fix says what to do instead.
func (c *Client) checkOwnApplication(a *Agent, fix string) error {
	if !a.own || (a.applicationID == c.cfg.ApplicationID && a.zoneID == c.cfg.ZoneID) {
		return nil
	}
	return fmt.Errorf("%w: session %s belongs to application %s in zone %s, not to this client's %s in %s; %s",
		ErrInvalidRequest, a.sessionID, a.applicationID, a.zoneID, c.cfg.ApplicationID, c.cfg.ZoneID, fix)
}
