package caracal

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caracal-go/caracal/internal/envelope"
	"github.com/caracal-go/caracal/internal/jwks"
	"github.com/caracal-go/caracal/internal/wire"
)

// Claims is what a Verifier established about an inbound bearer. The
// middleware binds exactly these identity fields; it never takes a session,
// delegation or hop from the request's baggage when a verifier is in use.
type Claims struct {
	// ZoneID and ApplicationID are required.
	ZoneID        string
	ApplicationID string
	// SessionID is the calling agent's session (agent_session_id).
	SessionID string
	// DelegationID is the edge the caller presented (delegation_edge_id).
	DelegationID string
	// ParentDelegationID is the edge before it in the delegation path.
	ParentDelegationID string
	// SubjectRecordID is the subject authority record, if the verifier knows
	// it; Caracal resource tokens do not carry it.
	SubjectRecordID string
	// Hop is the delegation hop count, 0 to 10.
	Hop int
	// Scopes are the token's scopes.
	Scopes []string
	// Use is the token class ("resource" or "session").
	Use string
	// ExpiresAt is the token's expiry.
	ExpiresAt time.Time
}

// Verifier checks an inbound bearer token and returns its claims. Verify
// must be safe for concurrent use. An error is answered with 401 (the error
// text is not sent to the client).
type Verifier interface {
	Verify(ctx context.Context, token string) (Claims, error)
}

// MiddlewareOption configures Middleware.
type MiddlewareOption func(*middlewareConfig)

type middlewareConfig struct {
	verifier Verifier
	verify   *verifyConfig
	trusted  bool
	n        int // how many of the three modes were asked for
}

// WithVerifier makes the middleware bind only requests whose bearer v
// accepts, with the identity v returns.
func WithVerifier(v Verifier) MiddlewareOption {
	return func(c *middlewareConfig) {
		c.verifier = v
		c.n++
	}
}

// TrustedPropagation makes the middleware bind the inbound envelope as it
// arrives (session, delegation and hop from the Caracal baggage, zone and
// application from the client's configuration) without verifying the
// bearer. A request still needs a bearer (401 missing_token otherwise). Use
// it only behind a component that verified the request already: anyone who
// can reach the server can claim any identity.
//
// Behind a Caracal 1.0 Gateway it binds no session, delegation or hop: the
// Gateway strips the Caracal baggage and the identity travels only in the
// resource token, which VerifyTokens reads.
func TrustedPropagation() MiddlewareOption {
	return func(c *middlewareConfig) {
		c.trusted = true
		c.n++
	}
}

type middlewareMode int

const (
	modeUnverified middlewareMode = iota // development default
	modeTrusted
	modeVerified
)

// middleware is the state of one Middleware; immutable but for the set of
// parse problems already logged.
type middleware struct {
	c        *Client
	mode     middlewareMode
	verifier Verifier
	warned   atomic.Uint32 // envelope.Problems bits already logged
	// keysDown is how much of an outage of the signing keys was logged
	// (keysNone, keysPartial or keysAll), so that an outage is logged once,
	// and once more when the aged keys run out, not per request.
	keysDown atomic.Uint32
}

// Middleware returns HTTP middleware that binds the inbound agent envelope
// (PROTOCOL §7.3, §7.5) into the request's context, readable with
// FromContext, so that the handler can act for the calling agent and
// propagate its context onwards (Headers, Transport).
//
// Choose how the identity is established: VerifyTokens (the built-in
// verifier for Caracal resource tokens), WithVerifier (your own), or
// TrustedPropagation (no verification, for servers behind a verifying
// component). At most one of them: more, or a nil Verifier, is an error. With
// none, a production configuration refuses to build the middleware;
// otherwise the middleware binds only the bearer and the trace context, never
// an unverified session or delegation, and says so once in the log.
//
// A request without a valid bearer is answered 401 with a JSON body
// {"error","error_description"}; a refused token 401 (or 403 for scope and
// hop failures); under TrustedPropagation, a baggage header that is over its
// caps, has a malformed member (of any key: it might have been a Caracal
// one), a Caracal member repeated with another value, a Caracal id that is
// not of the Coordinator's id form, or a bad caracal.hop 400. Nothing is
// bound from a refused request. Headers are size-capped and parsed strictly;
// irregularities are logged once per kind, not per request.
func (c *Client) Middleware(opts ...MiddlewareOption) (func(http.Handler) http.Handler, error) {
	if err := c.made("Middleware"); err != nil {
		return nil, err
	}
	var cfg middlewareConfig
	apply(&cfg, opts)
	m := &middleware{c: c}
	switch {
	case cfg.n > 1:
		return nil, errors.New("caracal: Middleware takes one of VerifyTokens, WithVerifier and TrustedPropagation")
	case cfg.verifier != nil:
		m.mode, m.verifier = modeVerified, cfg.verifier
	case cfg.verify != nil:
		v, err := c.builtinVerifier(cfg.verify)
		if err != nil {
			return nil, err
		}
		m.mode, m.verifier = modeVerified, v
	case cfg.n == 1 && !cfg.trusted:
		return nil, errors.New("caracal: WithVerifier was given a nil Verifier")
	case cfg.trusted:
		m.mode = modeTrusted
	case c.cfg.Production:
		return nil, errors.New("caracal: in production the Middleware must verify bearers: pass VerifyTokens(resource) or WithVerifier, or TrustedPropagation behind a verifying component")
	default:
		c.log.Warn("caracal: Middleware without a verifier binds only the bearer and trace context; pass VerifyTokens(resource) to bind verified agent identities")
	}
	return m.wrap, nil
}

func (m *middleware) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env, problems := envelope.Extract(r.Header)
		if problems != 0 {
			m.warn(r.Context(), problems)
		}
		if problems.Has(envelope.AuthorizationInvalid) {
			if v := r.Header["Authorization"]; len(v) == 1 && !bearerScheme(v[0]) {
				// Another scheme carries no bearer (§7.3): answer it as a
				// missing one, with a challenge naming no error (RFC 6750
				// §3.1), not as a bearer the client should replace.
				writeAuthError(w, http.StatusUnauthorized, codeMissingToken, "missing bearer token")
				return
			}
			writeAuthError(w, http.StatusUnauthorized, jwks.CodeInvalidToken, "malformed authorization header")
			return
		}
		if env.Token == "" {
			writeAuthError(w, http.StatusUnauthorized, codeMissingToken, "missing bearer token")
			return
		}
		if len(env.Token) > jwks.MaxTokenBytes {
			// The Gateway's cap: a bigger bearer is no Caracal token, and
			// binding it would carry it onwards.
			writeAuthError(w, http.StatusUnauthorized, jwks.CodeInvalidToken, "bearer token too large")
			return
		}
		token := env.Token
		a := &Agent{
			token:      &token,
			presented:  new(atomic.Bool),
			traceID:    env.TraceID,
			traceFlags: env.TraceFlags,
			traceState: env.TraceState,
			baggage:    env.Baggage,
		}
		switch m.mode {
		case modeVerified:
			if !m.bindVerified(w, r, a, token) {
				return
			}
		case modeTrusted:
			// A malformed Caracal baggage would bind some ids and drop
			// others: refuse the request rather than bind half an identity.
			if problems&(envelope.BaggageIgnored|envelope.BaggageMember|envelope.HopInvalid|envelope.CaracalConflict|envelope.IDInvalid) != 0 {
				writeAuthError(w, http.StatusBadRequest, "invalid_request", "malformed baggage")
				return
			}
			a.zoneID, a.applicationID = m.c.cfg.ZoneID, m.c.cfg.ApplicationID
			a.sessionID, a.delegationID, a.parentDelegationID = env.SessionID, env.DelegationID, env.ParentDelegationID
			a.subjectRecordID, a.hop = env.SubjectRecordID, env.Hop
		default:
			a.zoneID, a.applicationID = m.c.cfg.ZoneID, m.c.cfg.ApplicationID
		}
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), a)))
	})
}

// bindVerified verifies the bearer token and binds the identity its claims
// name to a. On a refusal it has answered w and reports false.
func (m *middleware) bindVerified(w http.ResponseWriter, r *http.Request, a *Agent, token string) bool {
	cl, err := m.verifier.Verify(r.Context(), token)
	if m.keysDown.Load() != keysNone && !m.keysFailing() && !errors.Is(err, jwks.ErrKeysUnavailable) {
		// The keys are back, whether or not this token passes; log the
		// next outage.
		m.keysDown.Store(keysNone)
	}
	if err != nil {
		m.keysFailed(r.Context(), err)
		status, code, desc := http.StatusUnauthorized, jwks.CodeInvalidToken, "invalid bearer token"
		var ve *jwks.Error
		if errors.As(err, &ve) {
			code, desc = ve.Code, ve.Description
			if code == jwks.CodeInsufficientScope || code == jwks.CodeHopCountExceeded {
				status = http.StatusForbidden
			}
		}
		writeAuthError(w, status, code, desc)
		return false
	}
	if cl.ZoneID == "" || cl.ApplicationID == "" {
		writeAuthError(w, http.StatusUnauthorized, jwks.CodeInvalidToken, "token names no zone or application")
		return false
	}
	if cl.Hop < 0 || cl.Hop > envelope.MaxHop {
		writeAuthError(w, http.StatusForbidden, jwks.CodeHopCountExceeded, "delegation hop count exceeds the maximum")
		return false
	}
	a.zoneID, a.applicationID = cl.ZoneID, cl.ApplicationID
	a.sessionID, a.delegationID, a.parentDelegationID = cl.SessionID, cl.DelegationID, cl.ParentDelegationID
	a.subjectRecordID, a.hop = cl.SubjectRecordID, cl.Hop
	a.scopes = cl.Scopes
	if _, builtin := m.verifier.(tokenVerifier); !builtin {
		// A caller's Verifier may keep the slice it returned; the
		// built-in one returns a fresh one.
		a.scopes = slices.Clone(cl.Scopes)
	}
	return true
}

// bearerScheme reports whether an Authorization value names the Bearer
// scheme, whatever follows it.
func bearerScheme(v string) bool {
	scheme, _, _ := strings.Cut(strings.TrimSpace(v), " ")
	scheme, _, _ = strings.Cut(scheme, "\t")
	return strings.EqualFold(scheme, "bearer")
}

// How much of an outage of the signing keys was logged.
const (
	keysNone    = iota
	keysPartial // aged keys still verify: tokens under other keys are refused
	keysAll     // every bearer is refused
)

// keysFailed logs, once per outage, that the signing keys cannot be
// fetched: bearers are then refused with a 401 that does not tell the
// client why, and only the server's operator can fix it. While aged keys
// still verify, only tokens under other keys are refused; the outage is
// logged once more when every bearer is.
func (m *middleware) keysFailed(ctx context.Context, err error) {
	if !errors.Is(err, jwks.ErrKeysUnavailable) {
		return
	}
	level := uint32(keysAll)
	if tv, ok := m.verifier.(tokenVerifier); ok && tv.keys.Held() {
		level = keysPartial
	}
	for {
		old := m.keysDown.Load()
		if old >= level {
			return
		}
		if m.keysDown.CompareAndSwap(old, level) {
			break
		}
	}
	// Log the fetch failure (URL, status or network error), not the
	// token refusal wrapped around it, whose text leaves the cause out.
	var ve *jwks.Error
	if errors.As(err, &ve) && ve.Err != nil {
		err = ve.Err
	}
	msg := "caracal: Middleware cannot fetch the STS signing keys, so every bearer is refused; check the STS URL (or VerifyJWKSURL) and that the STS is reachable"
	if level == keysPartial {
		msg = "caracal: Middleware cannot fetch the STS signing keys, so bearers under keys it does not hold are refused (and every bearer once the keys it holds age out); check the STS URL (or VerifyJWKSURL) and that the STS is reachable"
	}
	m.c.log.WarnContext(ctx, msg, "error", err)
}

// keysFailing reports whether the built-in verifier's last fetch of the
// signing keys failed. A token verified with an aged key does not end the
// outage: only a successful fetch does.
func (m *middleware) keysFailing() bool {
	tv, ok := m.verifier.(tokenVerifier)
	return ok && tv.keys.Failing()
}

// warn logs each kind of envelope problem the first time it is seen, with
// the context of the request that showed it.
func (m *middleware) warn(ctx context.Context, p envelope.Problems) {
	for {
		old := m.warned.Load()
		fresh := uint32(p) &^ old
		if fresh == 0 {
			return
		}
		if m.warned.CompareAndSwap(old, old|fresh) {
			m.c.log.WarnContext(ctx, "caracal: malformed inbound envelope headers (logged once per kind)", "problems", envelope.Problems(fresh).String())
			return
		}
	}
}

// writeAuthError answers with the resource-server adapters' error body.
// code and desc never carry the token, but desc may quote a verified claim
// (a token class), so it is JSON-encoded, not Go-quoted.
func writeAuthError(w http.ResponseWriter, status int, code, desc string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	// RFC 6750 §3: no error code when no credentials came, and
	// insufficient_scope on a 403 about scopes.
	switch {
	case code == codeMissingToken:
		h.Set("WWW-Authenticate", `Bearer realm="caracal"`)
	case status == http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Bearer realm="caracal", error="invalid_token"`)
	case code == jwks.CodeInsufficientScope:
		h.Set("WWW-Authenticate", `Bearer realm="caracal", error="insufficient_scope"`)
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(wire.ErrorBody{Error: code, ErrorDescription: desc})
}

// codeMissingToken answers a request without a bearer.
const codeMissingToken = "missing_token"

// builtinVerifier builds the VerifyTokens verifier.
func (c *Client) builtinVerifier(vc *verifyConfig) (Verifier, error) {
	if vc.err != nil {
		return nil, vc.err
	}
	resource := strings.TrimSpace(vc.resource)
	if resource == "" {
		return nil, errors.New("caracal: VerifyTokens needs the resource identifier the server protects")
	}
	base := strings.TrimRight(c.cfg.STSURL, "/")
	issuer := vc.issuer
	if issuer == "" {
		issuer = base
	}
	jwksURL := vc.jwksURL
	if jwksURL == "" {
		if base == "" {
			return nil, errors.New("caracal: VerifyTokens needs the STS URL (or VerifyJWKSURL) to fetch the signing keys")
		}
		jwksURL = base + "/.well-known/jwks.json?zone_id=" + url.QueryEscape(c.cfg.ZoneID)
	}
	u, err := url.Parse(jwksURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, errors.New("caracal: the JWKS URL is not an absolute http(s) URL")
	}
	if u.Scheme != "https" && c.cfg.Production && !c.cfg.AllowInsecureURLs && !isLoopback(u.Hostname()) {
		return nil, errors.New("caracal: in production the JWKS URL must be https (or loopback)")
	}
	uses := []string{wire.UseResource}
	var apps []string
	if vc.session {
		uses = append(uses, wire.UseSession)
		apps = vc.apps
		if len(apps) == 0 {
			apps = []string{c.cfg.ApplicationID}
		}
	}
	keys := jwks.NewKeys(jwks.KeysConfig{URL: jwksURL, HTTPClient: c.control})
	v, err := jwks.NewVerifier(keys, jwks.Expect{
		Issuer:    issuer,
		Audience:  resource,
		Zone:      c.cfg.ZoneID,
		Uses:      uses,
		Scopes:    vc.scopes,
		CacheSize: vc.cache,

		SessionApplications: apps,
	})
	if err != nil {
		return nil, err
	}
	return tokenVerifier{v, keys}, nil
}

// tokenVerifier adapts jwks.Verifier to Verifier.
type tokenVerifier struct {
	v    *jwks.Verifier
	keys *jwks.Keys
}

// Verify implements Verifier.
func (t tokenVerifier) Verify(ctx context.Context, token string) (Claims, error) {
	c, err := t.v.Verify(ctx, token)
	if err != nil {
		return Claims{}, err
	}
	out := Claims{
		ZoneID:        c.ZoneID,
		ApplicationID: c.ClientID,
		SessionID:     c.AgentSessionID,
		DelegationID:  c.DelegationEdgeID,
		Hop:           c.HopCount,
		Scopes:        wire.NormalizeScopes([]string{c.Scope}),
		Use:           c.Use,
		ExpiresAt:     c.Expiry(),
	}
	if n := len(c.DelegationPath); n >= 2 {
		out.ParentDelegationID = c.DelegationPath[n-2]
	}
	return out, nil
}
