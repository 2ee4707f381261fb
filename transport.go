package caracal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"

	"github.com/caracal-go/caracal/internal/envelope"
	"github.com/caracal-go/caracal/internal/stsclient"
	"github.com/caracal-go/caracal/internal/wire"
)

// TransportOption configures Transport and HTTPClient.
type TransportOption func(*transportConfig)

type transportConfig struct {
	scopes      []string
	propagation Propagation
	prefetch    int
}

// Propagation says which requests carry the envelope headers (traceparent,
// tracestate and the Caracal baggage).
type Propagation int

const (
	// PropagateGatewayOnly adds the envelope to Gateway requests only, so
	// that session and delegation ids never reach third parties. The default.
	PropagateGatewayOnly Propagation = iota
	// PropagateAlways adds the envelope to every request that carries a
	// bound agent, for deployments that trace through non-Caracal services.
	// It never adds a bearer: only Gateway requests get one.
	PropagateAlways
)

// WithScopes sets the scopes of the mandate minted for each Gateway request
// (a string may hold several space-separated scopes).
// WithRequestScopes overrides them for one request. Without scopes a Gateway
// request fails, since the Gateway accepts only a per-request mandate, unless
// its context carries an inbound gateway mandate not yet presented (see
// Transport).
func WithScopes(scopes ...string) TransportOption {
	s := wire.NormalizeScopes(scopes)
	return func(c *transportConfig) { c.scopes = s }
}

// WithPropagation sets where the envelope headers go (default
// PropagateGatewayOnly).
func WithPropagation(p Propagation) TransportOption {
	return func(c *transportConfig) { c.propagation = p }
}

// WithPrefetch keeps up to depth fresh mandates per (session, delegation,
// resource, scopes) minted in the background, so that a steady caller pays
// only the Gateway leg of a governed request instead of a mint and the
// Gateway leg. A depth below 1 means 1, above 16 means 16.
//
// A pooled mandate is used at most once, and one with less than 45 s of life
// left (the Gateway's 35 s pre-flight window plus a margin) is discarded. A
// pool is created only after a mint for its key succeeded on the request
// path with a mandate of at least 90 s of life (so an edge whose TTL caps
// its mandates below that is never prefetched), is dropped when its session
// closes or its Context ends (as it does when a parent session it was
// spawned under ends), when the client revokes a delegation, after a minute
// or so without use or when the STS refuses a background mint, and is never
// kept for scopes that needed a human approval. Background minting runs one
// refill at a time per pool (at most 256 pools per transport) and stops when
// the client closes, or within a minute or so after the transport is garbage
// collected. Each prefetched mandate counts against the STS mint budget
// (1,000 per minute per application and resource) like any other: a pool
// nobody takes from again wastes up to depth mints. The pools belong to the
// transport, so build one prefetching transport (or HTTPClient) and share it
// rather than one per request, whose pooled mandates would be wasted.
func WithPrefetch(depth int) TransportOption {
	depth = min(max(depth, 1), maxPrefetchDepth)
	return func(c *transportConfig) { c.prefetch = depth }
}

type requestScopesKey struct{}

// WithRequestScopes returns a copy of ctx that makes a governed request sent
// with it mint its mandate for scopes instead of the transport's (a string
// may hold several space-separated scopes). With no scopes the request mints
// nothing, as under a transport without WithScopes: it presents the
// context's inbound gateway mandate, or fails.
func WithRequestScopes(ctx context.Context, scopes ...string) context.Context {
	return context.WithValue(ctx, requestScopesKey{}, wire.NormalizeScopes(scopes))
}

// errNoScopes is returned for a Gateway request with no scopes to mint for.
var errNoScopes = errors.New("caracal: a Gateway request needs a per-request mandate: give the transport scopes (WithScopes, or WithRequestScopes per request); the session's own token is refused by the Gateway")

// noAgentError is returned for a Gateway request whose context carries no
// agent. It matches ErrNoSession, whose own advice (AsApplication) does not
// apply to the transport.
type noAgentError struct{ resource string }

func (e noAgentError) Error() string {
	return "caracal: a Gateway request for " + e.resource + " needs an agent bound to the request's context: create the request with the Context of a Session or Service (or of a request bound by Middleware)"
}

func (noAgentError) Is(target error) bool { return target == ErrNoSession }

// errNoDelegation is returned when the bound session holds no delegation
// edge; it matches ErrInvalidGrant, as the other local refusals of a grant.
var errNoDelegation = invalidGrant("the bound session holds no delegation edge, so the STS would refuse its mandate (policy denied, no_rule_matched); call resources from a child spawned with Grant.Narrow")

// transport is the RoundTripper returned by Client.Transport. Its fields are
// set at construction and never change; the prefetch pools sit behind their
// own lock.
type transport struct {
	c           *Client
	base        http.RoundTripper
	scopes      []string
	propagation Propagation
	router      router
	pool        *prefetcher // nil without WithPrefetch
	mint        func(context.Context, stsclient.MintRequest) (stsclient.Token, error)
}

// Transport returns an http.RoundTripper that sends requests through base
// (nil means the client's HTTP transport, else http.DefaultTransport) and
// governs the ones inside a resource binding.
//
// For each request it reads the agent bound to the request's context (see
// FromContext). A request whose URL falls inside a configured binding
// (longest prefix first), that already targets the Gateway, or that carries
// an X-Caracal-Resource header is a Gateway request: the transport mints a
// fresh single-use mandate for the resource and the scopes (WithScopes,
// WithRequestScopes), rewrites the URL to the Gateway, and sets
// Authorization, X-Caracal-Resource, the envelope headers and Host. Every
// other request, including one whose path has a dot segment or a backslash
// (even percent-encoded), is sent as it is: it never gets a Caracal bearer,
// and gets the envelope only with PropagateAlways. A request that carries
// X-Caracal-Resource but cannot be routed (no Gateway URL is configured, or
// such a path) fails before anything is sent. A request that another
// transport of this package, above this one, has already made a Gateway
// request is sent on as it is, so stacking two (one installed as
// http.DefaultTransport, say) still mints one mandate per request.
//
// A minted mandate is presented once: a retry or a redirect of a Gateway
// request mints again (WithPrefetch mints ahead of use, still one mandate per
// request). Without scopes, a request whose context was bound from an
// inbound use=gateway mandate presents that mandate, once: the Gateway
// accepts it only once, so a later request with the same context fails
// locally; give the transport scopes to make more than one call.
// Redirects answered by the Gateway should be returned to the caller rather
// than followed; HTTPClient does that, and a caller building its own
// http.Client around this transport should set CheckRedirect likewise.
// Either way, the bearer is only ever placed on the request the transport
// itself sends to the Gateway, so a redirect to another host never carries
// it. A redirect the other way, from a URL outside every binding into one,
// is refused with an error rather than governed (HTTPClient returns it to
// the caller): a host that is not a resource cannot make an agent use its
// authority on a request the agent never made.
//
// When minting needs a human approval the request fails with an
// *ApprovalRequiredError; wait with WaitApproval and send the request again.
// A mandate the STS mints with 35 s of life or less (its delegation ends too
// soon; see Grant.Narrow) fails the request with ErrInvalidGrant, since the
// Gateway would refuse it.
// A Gateway request of a session another client of this process spawned for
// another application or zone fails with ErrInvalidRequest before any call:
// send it with a transport of that client. So does one that needs a mandate
// minted for an agent with no session id (bound by a Middleware that
// verifies nothing).
//
// A response the Gateway cuts because the mandate's session or delegation
// was revoked while it streamed (the X-Caracal-Revoked trailer) ends in an
// error wrapping io.ErrUnexpectedEOF instead of io.EOF, so that the part
// read is never taken for the whole answer.
//
// The transport never modifies the caller's request, closes its body on
// every error, and is safe for concurrent use. The transport of a nil or
// zero Client refuses every request with ErrInvalidRequest.
func (c *Client) Transport(base http.RoundTripper, opts ...TransportOption) http.RoundTripper {
	if err := c.made("Transport"); err != nil {
		return refusing(base, err)
	}
	return c.newTransport(base, opts, nil)
}

// refusing is the transport of a nil or zero Client: it refuses every
// request with err, which says how to make a client.
func refusing(base http.RoundTripper, err error) *transport {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{base: base, router: router{err: err}}
}

// newTransport builds a transport; mint nil means the STS client's Mint
// (tests pass a fake).
func (c *Client) newTransport(base http.RoundTripper, opts []TransportOption, mint func(context.Context, stsclient.MintRequest) (stsclient.Token, error)) *transport {
	var cfg transportConfig
	apply(&cfg, opts)
	if base == nil {
		base = c.http.Transport
	}
	if base == nil {
		base = http.DefaultTransport
	}
	t := &transport{
		c:           c,
		base:        base,
		scopes:      cfg.scopes,
		propagation: cfg.propagation,
		router:      newRouter(c.cfg.GatewayURL, c.cfg.Bindings),
		mint:        mint,
	}
	if t.mint == nil {
		t.mint = c.sts.Mint
	}
	if cfg.prefetch > 0 {
		t.pool = newPrefetcher(c, t.mint, cfg.prefetch)
		// A transport dropped before the client closes must not leave its
		// prefetcher registered with the client (one per Transport call)
		// and its workers minting until then. The prefetcher does not
		// refer to t, so t can become unreachable. It stays registered
		// until its workers have exited, so Client.Close still waits for
		// them; the cleanup itself must not block.
		runtime.AddCleanup(t, func(p *prefetcher) {
			p.abandon(func() { c.untrack(p) })
		}, t.pool)
	}
	return t
}

// HTTPClient returns an *http.Client using Transport(nil, opts...). Its
// CheckRedirect returns a Gateway request's redirect, and any redirect into
// a resource binding, to the caller instead of following it (the 3xx
// response is returned with a nil error), and stops other redirect chains
// after 10 hops as the default client does. It has no Timeout: set one, or
// use request contexts.
func (c *Client) HTTPClient(opts ...TransportOption) *http.Client {
	var t *transport
	if err := c.made("HTTPClient"); err != nil {
		t = refusing(nil, err)
	} else {
		t = c.newTransport(nil, opts, nil)
	}
	return &http.Client{Transport: t, CheckRedirect: t.checkRedirect}
}

func (t *transport) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("caracal: stopped after 10 redirects")
	}
	if d, err := t.router.decide(via[len(via)-1]); err != nil || d.routed {
		return http.ErrUseLastResponse
	}
	if d, err := t.router.decide(req); err != nil || d.routed {
		return http.ErrUseLastResponse // see redirectedIn
	}
	return nil
}

// redirectedIn reports whether req, inside a binding, is a redirect from
// a URL outside every binding. Such a request is not governed: a host that
// is not a resource could otherwise steer an agent into using its authority
// on a request the agent never made.
func (t *transport) redirectedIn(req *http.Request) (from string, ok bool) {
	if req.Response == nil {
		return "", false
	}
	prev := req.Response.Request
	if prev == nil || prev.URL == nil {
		// A Gateway hop always reports its request (governed sets it), so
		// this one was not governed: its base transport left it out.
		return "a previous hop", true
	}
	if d, err := t.router.decide(prev); err == nil && d.routed {
		return "", false
	}
	return prev.URL.Host, true
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.c == nil {
		// A nil or zero Client's (see refusing): it sends nothing on, also
		// not a request a transport above it governed.
		closeBody(req)
		return nil, t.router.err
	}
	if g, ok := req.Context().Value(governedKey{}).(*governedAuth); ok && req.Header.Get("Authorization") == g.auth {
		// Another of these transports above this one governed it already,
		// for its own Gateway, which this one's routing need not know.
		return t.base.RoundTrip(req)
	}
	d, err := t.router.decide(req)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	if !d.routed {
		if t.propagation != PropagateAlways {
			return t.base.RoundTrip(req)
		}
		a, ok := FromContext(req.Context())
		if !ok {
			return t.base.RoundTrip(req)
		}
		out := cloneRequest(req, req.Context())
		foldHeaders(out.Header, envelopeHeaders...)
		envelope.Inject(out.Header, agentEnvelope(a), true)
		return t.base.RoundTrip(out)
	}
	if from, ok := t.redirectedIn(req); ok {
		closeBody(req)
		return nil, fmt.Errorf("caracal: %s redirected the request into resource %s; a redirect from outside every resource binding is not followed with the agent's authority (request the URL itself if the call is meant)", from, d.resource)
	}
	return t.governed(req, d)
}

// envelopeHeaders are the headers envelope.Inject writes, and
// governedHeaders those a Gateway request gets.
var (
	envelopeHeaders = []string{"Traceparent", "Tracestate", "Baggage"}
	governedHeaders = []string{"Authorization", wire.HeaderResource, "Traceparent", "Tracestate", "Baggage"}
)

// governedKey marks the context of a request a transport sends to the
// Gateway with the Authorization value it set, so that another transport of
// this package under it (one installed as http.DefaultTransport, say) sends
// that request on as it is rather than minting a second mandate, or finding
// a pinned one already presented. Any other request made under the same
// context, by a RoundTripper between the two, is governed as usual.
type governedKey struct{}

// governedAuth is the value under governedKey, a pointer whose String
// hides the mandate: a context prints the values it holds (%+v and %#v
// print a pointer's address), and a base transport that logs requests with
// their Authorization redacted may print the context.
type governedAuth struct{ auth string }

func (*governedAuth) String() string { return "caracal.governed" }

func (t *transport) governed(req *http.Request, d decision) (*http.Response, error) {
	ctx := req.Context()
	a, ok := FromContext(ctx)
	if !ok {
		closeBody(req)
		return nil, noAgentError{d.resource}
	}
	if t.c.isClosed() {
		closeBody(req)
		return nil, ErrClosed
	}
	if err := a.closedErr(); err != nil {
		// Also under a context that outlives the session.
		closeBody(req)
		return nil, err
	}
	if err := t.c.checkOwnApplication(a, "send the request with a transport of the client that spawned it"); err != nil {
		closeBody(req)
		return nil, err
	}
	scopes := t.scopes
	if s, ok := ctx.Value(requestScopesKey{}).([]string); ok {
		scopes = s
	}
	var bearer string
	if len(scopes) == 0 {
		if ctx.Err() != nil {
			// Nothing would be sent: keep the pinned mandate for a
			// request that can be.
			closeBody(req)
			return nil, context.Cause(ctx)
		}
		tok, err := gatewayContextToken(a)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		bearer = tok
	} else {
		if err := t.c.checkInboundApplication(a); err != nil {
			closeBody(req)
			return nil, err
		}
		tok, err := t.mandate(ctx, a, d.resource, scopes)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		bearer = tok.Value
	}

	// Clone copies the header map and the URL; the body is shared, so the
	// base transport closes it, and the caller's GetBody keeps working.
	auth := "Bearer " + bearer
	out := cloneRequest(req, context.WithValue(ctx, governedKey{}, &governedAuth{auth}))
	if d.target != nil {
		out.URL = d.target
	}
	out.Host = out.URL.Host
	foldHeaders(out.Header, governedHeaders...)
	out.Header.Set("Authorization", auth)
	out.Header.Set(wire.HeaderResource, d.resource)
	envelope.Inject(out.Header, agentEnvelope(a), true)
	unreplayable(out)
	resp, err := t.base.RoundTrip(out)
	if resp != nil {
		// The response must not hand the mandate back to the caller (who
		// may log resp.Request): it points at the request the caller sent,
		// which also makes Response.Location resolve against the caller's
		// URL rather than the Gateway's.
		resp.Request = req
		watchRevoked(resp, d.resource, t.c, a.sessionID)
	}
	return resp, err
}

// checkInboundApplication refuses to mint for an agent bound from an
// inbound request of another application or zone (a verified token names
// the caller's): the STS mints only for the caller's own sessions, so the
// mint would send the other application's session and edge under this
// client's credentials only to be refused.
func (c *Client) checkInboundApplication(a *Agent) error {
	if a.own || a.applicationID == "" || (a.applicationID == c.cfg.ApplicationID && a.zoneID == c.cfg.ZoneID) {
		return nil
	}
	return fmt.Errorf("%w: the agent bound to the context is session %s of application %s in zone %s, bound from an inbound request; this client (%s in %s) cannot mint for it: spawn sessions of its own (a root with WithoutParent, a child of it with Grant.Narrow) and send the request from the child's Context",
		ErrInvalidRequest, a.sessionID, a.applicationID, a.zoneID, c.cfg.ApplicationID, c.cfg.ZoneID)
}

// CloseIdleConnections closes the idle connections of the base transport,
// so that http.Client.CloseIdleConnections reaches them through this one.
func (t *transport) CloseIdleConnections() {
	if b, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		b.CloseIdleConnections()
	}
}

// GatewayRequest builds a request for path on resource through the Gateway,
// for code that prefers explicit routing to bindings. Send it with a client
// from HTTPClient (or Transport) so that it gets a mandate. path is relative
// to the Gateway (a leading "/" is added) and may carry a query; it must not
// be absolute, carry a fragment, dot segments or backslashes. A request it
// cannot build (such a path, no resource, no Gateway URL configured) is
// refused with an error matching ErrInvalidRequest.
func (c *Client) GatewayRequest(ctx context.Context, method, resource, path string, body io.Reader) (*http.Request, error) {
	if err := c.made("GatewayRequest"); err != nil {
		return nil, err
	}
	if c.cfg.GatewayURL == "" {
		return nil, fmt.Errorf("%w: GatewayRequest: no Gateway URL is configured (set CARACAL_GATEWAY_URL or gateway_url)", ErrInvalidRequest)
	}
	resource = strings.TrimSpace(resource)
	if resource == "" {
		return nil, fmt.Errorf("%w: GatewayRequest needs a resource identifier (such as resource://tickets)", ErrInvalidRequest)
	}
	target, err := gatewayTarget(c.cfg.GatewayURL, path)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, fmt.Errorf("%w: GatewayRequest: %w", ErrInvalidRequest, err)
	}
	req.Header.Set(wire.HeaderResource, resource)
	return req, nil
}
