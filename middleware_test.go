package caracal_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/internal/envelope"
	"github.com/caracal-go/caracal/internal/wire"
)

const (
	mwIssuer   = "http://sts.test"
	mwResource = "resource://tickets"
	mwZone     = "zone-test"
	mwTrace    = "5f1c2b3a4d5e6f708192a3b4c5d6e7f8"
)

type mwSigner struct {
	kid string
	key *ecdsa.PrivateKey
}

func newMWSigner(t testing.TB, kid string) mwSigner {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return mwSigner{kid: kid, key: k}
}

func (s mwSigner) jwks() []byte {
	b, _ := s.key.PublicKey.Bytes()
	enc := base64.RawURLEncoding.EncodeToString
	doc, _ := json.Marshal(wire.JWKS{Keys: []wire.JWK{{Kty: "EC", Crv: "P-256", Use: "sig", Kid: s.kid, Alg: "ES256", X: enc(b[1:33]), Y: enc(b[33:])}}})
	return doc
}

func (s mwSigner) sign(t testing.TB, c jwt.MapClaims) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["kid"] = s.kid
	out, err := tok.SignedString(s.key)
	require.NoError(t, err)
	return out
}

func resourceClaims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": mwIssuer, "sub": "app-test", "aud": []string{mwResource},
		"exp": now.Add(15 * time.Minute).Unix(), "iat": now.Unix(), "jti": "jti-1",
		"zone_id": mwZone, "client_id": "app-test", "scope": "tickets:read",
		"sid": "rec-2", "root_sid": "rec-1", "use": "resource", "sub_type": "application",
		"agent_session_id": "sess-child", "delegation_edge_id": "edge-2",
		"delegation_path": []string{"edge-1", "edge-2"}, "hop_count": 2,
	}
}

// jwksClient serves the signer's JWKS to the client and counts fetches.
func jwksClient(s mwSigner, fetches *atomic.Int32) *http.Client {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if r.URL.Path != "/.well-known/jwks.json" || r.URL.Query().Get("zone_id") != mwZone {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(s.jwks())
	})
	return &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Result(), nil
	})}
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func mwConfig() caracal.Config {
	return caracal.Config{
		ZoneID: mwZone, ApplicationID: "app-resource", ClientSecret: "s3cr3t",
		STSURL: mwIssuer, CoordinatorURL: "http://coordinator.test", GatewayURL: "http://gateway.test",
	}
}

func mwClient(t testing.TB, hc *http.Client, opts ...caracal.Option) *caracal.Client {
	c, err := caracal.NewFromConfig(mwConfig(), append([]caracal.Option{caracal.WithHTTPClient(hc)}, opts...)...)
	require.NoError(t, err)
	return c
}

// seen captures what the handler behind the middleware received.
type seen struct {
	calls atomic.Int32
	agent atomic.Pointer[caracal.Agent]
}

func (s *seen) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		if a, ok := caracal.FromContext(r.Context()); ok {
			s.agent.Store(a)
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func serve(h http.Handler, hdr http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/tickets/42", nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestMiddlewareVerifiesResourceTokens(t *testing.T) {
	s := newMWSigner(t, "kid-1")
	var fetches atomic.Int32
	c := mwClient(t, jwksClient(s, &fetches))
	mw, err := c.Middleware(caracal.VerifyTokens(mwResource))
	require.NoError(t, err)
	var got seen
	h := mw(got.handler())

	rec := serve(h, http.Header{
		"Authorization": {"Bearer " + s.sign(t, resourceClaims())},
		"Traceparent":   {"00-" + mwTrace + "-3c4d5e6f708192a3-01"},
		// Behind the Gateway there is no caracal baggage; a forged one is ignored.
		"Baggage": {"caracal.agent_session=forged,caracal.hop=9,tenant=acme"},
	})
	require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
	a := got.agent.Load()
	require.NotNil(t, a)
	assert.Equal(t, mwZone, a.ZoneID())
	assert.Equal(t, "app-test", a.ApplicationID(), "the caller's application, from the token")
	assert.Equal(t, "sess-child", a.SessionID())
	assert.Equal(t, "edge-2", a.DelegationID())
	assert.Equal(t, "edge-1", a.ParentDelegationID())
	assert.Equal(t, 2, a.Hop())
	assert.Equal(t, mwTrace, a.TraceID())

	// Refusals: each answered 401/403 with a JSON body, the handler never runs.
	other := newMWSigner(t, "kid-unknown")
	forge := func(mut func(jwt.MapClaims)) string {
		cl := resourceClaims()
		mut(cl)
		return s.sign(t, cl)
	}
	none := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, resourceClaims())
		tok.Header["kid"] = "kid-1"
		out, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		require.NoError(t, err)
		return out
	}
	cases := map[string]struct {
		auth   []string
		status int
		code   string
	}{
		"missing bearer":  {nil, 401, "missing_token"},
		"basic auth":      {[]string{"Basic dXNlcjpwYXNz"}, 401, "missing_token"},
		"two headers":     {[]string{"Bearer a", "Bearer b"}, 401, "invalid_token"},
		"expired":         {[]string{"Bearer " + forge(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-2 * time.Minute).Unix() })}, 401, "invalid_token"},
		"wrong zone":      {[]string{"Bearer " + forge(func(c jwt.MapClaims) { c["zone_id"] = "zone-other" })}, 401, "invalid_zone"},
		"wrong audience":  {[]string{"Bearer " + forge(func(c jwt.MapClaims) { c["aud"] = []string{"resource://billing"} })}, 401, "invalid_token"},
		"use gateway":     {[]string{"Bearer " + forge(func(c jwt.MapClaims) { c["use"] = "gateway" })}, 401, "invalid_token"},
		"use session":     {[]string{"Bearer " + forge(func(c jwt.MapClaims) { c["use"] = "session" })}, 401, "invalid_token"},
		"use unprintable": {[]string{"Bearer " + forge(func(c jwt.MapClaims) { c["use"] = "x\x00\v\xff" })}, 401, "invalid_token"},
		"alg none":        {[]string{"Bearer " + none()}, 401, "invalid_token"},
		"unknown key":     {[]string{"Bearer " + other.sign(t, resourceClaims())}, 401, "invalid_token"},
		"too many hops":   {[]string{"Bearer " + forge(func(c jwt.MapClaims) { c["hop_count"] = 11 })}, 403, "hop_count_exceeded"},
		"not a jwt":       {[]string{"Bearer not.a.jwt"}, 401, "invalid_token"},
		"empty bearer":    {[]string{"Bearer "}, 401, ""},
		"wrong issuer":    {[]string{"Bearer " + forge(func(c jwt.MapClaims) { c["iss"] = "http://evil.test" })}, 401, "invalid_token"},
		"missing session": {[]string{"Bearer " + forge(func(c jwt.MapClaims) { delete(c, "sid") })}, 401, "invalid_token"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := got.calls.Load()
			rec := serve(h, http.Header{"Authorization": tc.auth})
			assert.Equal(t, tc.status, rec.Code)
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			switch {
			case tc.code == "missing_token":
				assert.Equal(t, `Bearer realm="caracal"`, rec.Header().Get("WWW-Authenticate"))
			case tc.status == 401:
				assert.Equal(t, `Bearer realm="caracal", error="invalid_token"`, rec.Header().Get("WWW-Authenticate"))
			default:
				assert.Empty(t, rec.Header().Get("WWW-Authenticate"))
			}
			var body struct{ Error, ErrorDescription string }
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &struct {
				Error            *string `json:"error"`
				ErrorDescription *string `json:"error_description"`
			}{&body.Error, &body.ErrorDescription}))
			if tc.code != "" {
				assert.Equal(t, tc.code, body.Error)
			}
			assert.NotEmpty(t, body.ErrorDescription)
			if len(tc.auth) == 1 && len(tc.auth[0]) > 20 {
				assert.NotContains(t, rec.Body.String(), tc.auth[0][7:], "the token is never echoed")
			}
			assert.Equal(t, before, got.calls.Load(), "the handler never runs")
		})
	}
	assert.LessOrEqual(t, fetches.Load(), int32(2), "one fetch, plus at most one for the unknown key")
}

func TestMiddlewareRequireScopesAndSessionTokens(t *testing.T) {
	s := newMWSigner(t, "kid-1")
	var fetches atomic.Int32
	c := mwClient(t, jwksClient(s, &fetches))
	mw, err := c.Middleware(caracal.VerifyTokens(mwResource, caracal.RequireScopes("tickets:write"), caracal.AcceptSessionTokens("app-test")))
	require.NoError(t, err)
	var got seen
	h := mw(got.handler())
	rec := serve(h, http.Header{"Authorization": {"Bearer " + s.sign(t, resourceClaims())}})
	assert.Equal(t, http.StatusForbidden, rec.Code)
	assert.Contains(t, rec.Body.String(), "insufficient_scope")
	assert.Equal(t, `Bearer realm="caracal", error="insufficient_scope"`, rec.Header().Get("WWW-Authenticate"))

	cl := resourceClaims()
	cl["use"], cl["scope"] = "session", "agent:lifecycle tickets:write"
	rec = serve(h, http.Header{"Authorization": {"Bearer " + s.sign(t, cl)}})
	assert.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())

	// Scopes may be given space-separated, as in an OAuth scope parameter.
	mw, err = c.Middleware(caracal.VerifyTokens(mwResource, caracal.RequireScopes("tickets:read tickets:write")))
	require.NoError(t, err)
	h = mw(got.handler())
	rec = serve(h, http.Header{"Authorization": {"Bearer " + s.sign(t, resourceClaims())}})
	assert.Equal(t, http.StatusForbidden, rec.Code, "tickets:write is missing")
	cl = resourceClaims()
	cl["scope"] = "tickets:write tickets:read"
	rec = serve(h, http.Header{"Authorization": {"Bearer " + s.sign(t, cl)}})
	assert.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
}

func TestMiddlewareRemembersTokensUntilTheyExpire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newMWSigner(t, "kid-1")
		var fetches atomic.Int32
		c := mwClient(t, jwksClient(s, &fetches))
		cl := resourceClaims()
		cl["use"], cl["scope"] = "session", "agent:lifecycle tickets:read"
		hdr := http.Header{"Authorization": {"Bearer " + s.sign(t, cl)}}
		for _, opt := range []caracal.VerifyOption{caracal.VerifyCacheSize(16), caracal.VerifyCacheSize(0)} {
			mw, err := c.Middleware(caracal.VerifyTokens(mwResource, caracal.AcceptSessionTokens("app-test"), opt))
			require.NoError(t, err)
			var got seen
			h := mw(got.handler())
			for range 3 {
				rec := serve(h, hdr)
				require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
				assert.Equal(t, "sess-child", got.agent.Load().SessionID())
			}
		}
		mw, err := c.Middleware(caracal.VerifyTokens(mwResource, caracal.AcceptSessionTokens("app-test")))
		require.NoError(t, err)
		var got seen
		h := mw(got.handler())
		require.Equal(t, http.StatusNoContent, serve(h, hdr).Code)
		time.Sleep(15*time.Minute + 60*time.Second) // exp + 60 s leeway: still accepted
		require.Equal(t, http.StatusNoContent, serve(h, hdr).Code)
		time.Sleep(time.Second)
		rec := serve(h, hdr)
		assert.Equal(t, http.StatusUnauthorized, rec.Code)
		assert.Contains(t, rec.Body.String(), "token expired")
		assert.Equal(t, int32(2), got.calls.Load(), "the expired token never reached the handler")
	})
}

func TestMiddlewareTrustedPropagation(t *testing.T) {
	c := mwClient(t, http.DefaultClient)
	mw, err := c.Middleware(caracal.TrustedPropagation())
	require.NoError(t, err)
	var got seen
	h := mw(got.handler())
	rec := serve(h, http.Header{
		"Authorization": {"bearer   tok"},
		"Baggage":       {"caracal.agent_session=sess-1,caracal.delegation_edge=edge-1,caracal.hop=99,x=y"},
	})
	require.Equal(t, http.StatusNoContent, rec.Code)
	a := got.agent.Load()
	assert.Equal(t, "sess-1", a.SessionID())
	assert.Equal(t, "edge-1", a.DelegationID())
	assert.Equal(t, 10, a.Hop(), "hop clamped to 10")
	assert.Equal(t, mwZone, a.ZoneID())
	assert.Equal(t, "app-resource", a.ApplicationID(), "zone and application from the server's own config")

	// A malformed baggage binds nothing.
	for _, bag := range []string{
		"caracal.agent_session=sess-1,caracal.hop=1x",
		"caracal.agent_session=sess-1,=broken",
		"caracal.agent_session=sess-1,tenant", // any malformed member: it might have been a Caracal one
		strings.Repeat("k=v,", 65) + "caracal.agent_session=sess-1",
		"caracal.agent_session=" + strings.Repeat("a", 8200),
		// Ids outside the Coordinator's id form: no session has them.
		"caracal.agent_session=sess-1,caracal.delegation_edge=" + strings.Repeat("%C8", 50),
		"caracal.agent_session=sess%2F1",
		"caracal.parent_edge=e%201",
		"caracal.session=" + strings.Repeat("r", 129),
	} {
		var none seen
		rec := serve(mw(none.handler()), http.Header{"Authorization": {"Bearer tok"}, "Baggage": {bag}})
		assert.Equal(t, http.StatusBadRequest, rec.Code, bag[:min(len(bag), 40)])
		assert.Zero(t, none.calls.Load())
	}
	rec = serve(h, http.Header{"Baggage": {"caracal.agent_session=sess-1"}})
	assert.Equal(t, http.StatusUnauthorized, rec.Code)
	rec = serve(h, http.Header{"Authorization": {"Bearer " + strings.Repeat("x", 4097)}})
	assert.Equal(t, http.StatusUnauthorized, rec.Code, "the bearer is size-capped without verification too")
}

func TestMiddlewareConstruction(t *testing.T) {
	c := mwClient(t, http.DefaultClient)
	_, err := c.Middleware(caracal.TrustedPropagation(), caracal.VerifyTokens(mwResource))
	require.Error(t, err, "not both")
	_, err = c.Middleware(caracal.WithVerifier(nil))
	require.Error(t, err)
	_, err = c.Middleware(caracal.VerifyTokens(" "))
	require.Error(t, err)

	cfg := mwConfig()
	cfg.Production = true
	cfg.STSURL, cfg.CoordinatorURL, cfg.GatewayURL = "https://sts.test", "https://coordinator.test", "https://gateway.test"
	prod, err := caracal.NewFromConfig(cfg)
	require.NoError(t, err)
	_, err = prod.Middleware()
	require.Error(t, err, "production refuses an unverifying middleware")
	_, err = prod.Middleware(caracal.VerifyTokens(mwResource, caracal.VerifyJWKSURL("http://keys.example/jwks")))
	require.Error(t, err, "production refuses plain-http keys")
	for _, local := range []string{"http://localhost:8080/jwks", "http://LocalHost:8080/jwks", "http://127.0.0.1:8080/jwks", "http://[::1]:8080/jwks"} {
		_, err = prod.Middleware(caracal.VerifyTokens(mwResource, caracal.VerifyJWKSURL(local)))
		require.NoError(t, err, "plain http on loopback is allowed, as for the service URLs: %s", local)
	}
	_, err = prod.Middleware(caracal.VerifyTokens(mwResource))
	require.NoError(t, err)

	// Development without a verifier: bearer and trace only, never ids.
	var logs bytes.Buffer
	dev := mwClient(t, http.DefaultClient, caracal.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	mw, err := dev.Middleware()
	require.NoError(t, err)
	assert.Contains(t, logs.String(), "binds only the bearer")
	var got seen
	rec := serve(mw(got.handler()), http.Header{"Authorization": {"Bearer t"}, "Baggage": {"caracal.agent_session=sess-1"}, "Traceparent": {"00-" + mwTrace + "-3c4d5e6f708192a3-01"}})
	require.Equal(t, http.StatusNoContent, rec.Code)
	assert.Empty(t, got.agent.Load().SessionID())
	assert.Equal(t, mwTrace, got.agent.Load().TraceID())
}

func TestMiddlewareLogsParseProblemsOnce(t *testing.T) {
	var records atomic.Int32
	c := mwClient(t, http.DefaultClient, caracal.WithLogger(slog.New(countHandler{&records})))
	mw, err := c.Middleware(caracal.TrustedPropagation())
	require.NoError(t, err)
	var got seen
	h := mw(got.handler())
	for range 20 {
		serve(h, http.Header{"Authorization": {"Bearer t"}, "Traceparent": {"garbage"}})
	}
	assert.Equal(t, int32(1), records.Load())
	serve(h, http.Header{"Authorization": {"Bearer t"}, "Traceparent": {"00-" + mwTrace + "-3c4d5e6f708192a3-01"}, "Tracestate": {"a=\x01"}})
	assert.Equal(t, int32(2), records.Load(), "a new kind of problem is logged once too")
	assert.Equal(t, int32(21), got.calls.Load(), "trace problems do not refuse the request")
}

// TestMiddlewareLogsKeyOutageOnce: when the signing keys cannot be fetched,
// every bearer is refused and the operator learns why from one log line per
// outage, not one per request.
func TestMiddlewareLogsKeyOutageOnce(t *testing.T) {
	s := newMWSigner(t, "kid-1")
	hc := &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
		return nil, errors.New("connection refused")
	})}
	var records atomic.Int32
	c := mwClient(t, hc, caracal.WithLogger(slog.New(countHandler{&records})))
	mw, err := c.Middleware(caracal.VerifyTokens(mwResource))
	require.NoError(t, err)
	var got seen
	h := mw(got.handler())
	tok := s.sign(t, resourceClaims())
	for range 5 {
		rec := serve(h, http.Header{"Authorization": {"Bearer " + tok}})
		assert.Equal(t, http.StatusUnauthorized, rec.Code)
	}
	assert.Equal(t, int32(1), records.Load(), "the outage is logged once")
	assert.Zero(t, got.calls.Load())
}

type countHandler struct{ n *atomic.Int32 }

func (h countHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (h countHandler) Handle(context.Context, slog.Record) error { h.n.Add(1); return nil }
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler        { return h }
func (h countHandler) WithGroup(string) slog.Handler             { return h }

// FuzzMiddlewareHeaders feeds hostile envelope headers to a trusted
// middleware: it never panics, either refuses with a JSON body or binds an
// identity, and a bound identity re-encodes to headers that decode to the
// same identity.
func FuzzMiddlewareHeaders(f *testing.F) {
	f.Add("Bearer tok", "00-"+mwTrace+"-3c4d5e6f708192a3-01", "caracal.agent_session=s,caracal.hop=2,k=v%20x", "")
	f.Add("bearer  x", "ff-00", "caracal.hop=99999999999999999999", "ts=1")
	f.Add("", "", "", "")
	f.Add("Bearer t", "00-"+mwTrace+"-3c4d5e6f708192a3-01-extra", "a=b;prop,=x,caracal.delegation_edge=%zz", "")
	f.Add("Basic x", "01-"+mwTrace+"-3c4d5e6f708192a3-01-more", strings.Repeat("m=1,", 70), "\x00")
	f.Add("BeArer 0", "\xf5", "caracal.delegation_edge="+strings.Repeat("\xc8", 3126)+"%A\x9e*", "d")
	c := mwClient(f, http.DefaultClient)
	mw, err := c.Middleware(caracal.TrustedPropagation())
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, auth, tp, bag, ts string) {
		var got seen
		h := mw(got.handler())
		hdr := http.Header{}
		for k, v := range map[string]string{"Authorization": auth, "Traceparent": tp, "Baggage": bag, "Tracestate": ts} {
			if v != "" {
				hdr[k] = []string{v}
			}
		}
		rec := serve(h, hdr)
		if got.calls.Load() == 0 {
			require.GreaterOrEqual(t, rec.Code, 400)
			require.True(t, json.Valid(rec.Body.Bytes()), rec.Body.String())
			return
		}
		a := got.agent.Load()
		require.NotNil(t, a)
		require.LessOrEqual(t, a.Hop(), 10)
		require.GreaterOrEqual(t, a.Hop(), 0)

		// Round trip: what was bound, re-encoded, decodes to the same.
		env := envelope.Envelope{TraceID: a.TraceID(), SessionID: a.SessionID(), DelegationID: a.DelegationID(),
			ParentDelegationID: a.ParentDelegationID(), SubjectRecordID: a.SubjectRecordID(), Hop: a.Hop()}
		out := http.Header{}
		envelope.Inject(out, env, false)
		back, problems := envelope.Extract(out)
		require.Zero(t, problems&^envelope.AuthorizationInvalid, problems.String())
		require.Equal(t, env.SessionID, back.SessionID)
		require.Equal(t, env.DelegationID, back.DelegationID)
		require.Equal(t, env.Hop, back.Hop)
		if env.TraceID != "" {
			require.Equal(t, env.TraceID, back.TraceID)
		}
	})
}
