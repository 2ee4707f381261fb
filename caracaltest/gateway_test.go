package caracaltest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/wire"
)

// exOperations is example A's enforced operation set.
var exOperations = map[string]string{"GET /tickets/42": "tickets:read"}

// readerEdge is example A's narrowed reader child: 600 s, tickets:read,
// constraints.resources = [resource://tickets].
func (env *stsEnv) readerEdge() (root, child *session, e *edge) {
	root, child = env.session(exApp, "dispatcher"), env.session(exApp, "reader")
	e = env.edge(root, child, nil, []string{"tickets:read"}, wire.Constraints{Resources: []string{exResource}, TTLSeconds: 600}, 600*time.Second)
	return root, child, e
}

// mandate mints a gateway mandate for child over e.
func (env *stsEnv) mandate(t *testing.T, child *session, e *edge, scope string) string {
	t.Helper()
	return env.token(t, mintForm(child, e, scope)).AccessToken
}

// forge builds an unsigned JWT-shaped token with the given payload.
func forge(payload map[string]any) string {
	b, err := json.Marshal(payload)
	if err != nil {
		panic(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"ES256","typ":"JWT"}`)) + "." + enc(b) + ".c2ln"
}

// tamper flips the first character of a token's signature.
func tamper(tok string) string {
	i := strings.LastIndexByte(tok, '.') + 1
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

// verifyES256 verifies tok against the world's current key.
func (env *stsEnv) verifyES256(t *testing.T, tok string) {
	t.Helper()
	_, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return &env.w.keys[0].private.PublicKey, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(env.clock.Now))
	require.NoError(t, err)
}

// TestExampleA5 reproduces PROTOCOL §10 A5 (and the upstream's view, E).
func TestExampleA5(t *testing.T) {
	env := newSTSEnv(t, func(c *worldConfig) { c.Resources[0].Operations = exOperations })
	root, child, e := env.readerEdge()
	env.clock.Advance(2 * time.Second)
	tokM := env.mandate(t, child, e, "tickets:read")
	env.clock.Advance(3 * time.Second)
	m := claims(t, tokM)

	resp := env.gateway(t, http.MethodGet, "/tickets/42", tokM,
		"traceparent", "00-5f1c2b3a4d5e6f708192a3b4c5d6e7f8-3c4d5e6f708192a3-01",
		"baggage", "caracal.agent_session="+child.id+",caracal.delegation_edge="+e.id+",caracal.hop=1")
	body := readBody(t, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.JSONEq(t, `{"id":42,"title":"printer on fire"}`, body)
	rid := resp.Header.Get(wire.HeaderRequestID)
	u, err := uuid.Parse(rid)
	require.NoError(t, err)
	assert.Equal(t, uuid.Version(4), u.Version())
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.Equal(t, "595", resp.Header.Get(wire.HeaderTokenExpiresIn), "seconds until the mandate's exp")
	assert.Contains(t, resp.Trailer, "X-Caracal-Revoked")

	up := env.lastSeen(t)
	assert.Equal(t, "GET", up.Method)
	assert.Equal(t, "/tickets/42", up.Path)
	assert.Equal(t, "00-5f1c2b3a4d5e6f708192a3b4c5d6e7f8-3c4d5e6f708192a3-01", up.Header.Get("Traceparent"))
	assert.Equal(t, rid, up.Header.Get(wire.HeaderRequestID))
	assert.Equal(t, "127.0.0.1", up.Header.Get("X-Forwarded-For"))
	assert.Equal(t, "http", up.Header.Get("X-Forwarded-Proto"))
	assert.Equal(t, strings.TrimPrefix(env.gw.URL, "http://"), up.Header.Get("X-Forwarded-Host"))
	assert.Empty(t, up.Header.Values("Baggage"), "every member was caracal.*")
	assert.Empty(t, up.Header.Get(wire.HeaderResource))
	tokR, ok := strings.CutPrefix(up.Header.Get("Authorization"), "Bearer ")
	require.True(t, ok)
	assert.NotEqual(t, tokM, tokR)
	env.verifyES256(t, tokR)

	r := claims(t, tokR)
	assert.Equal(t, "resource", r["use"])
	assert.Equal(t, []any{exResource}, r["aud"])
	assert.Equal(t, exIssuer, r["iss"])
	assert.Equal(t, m["sid"], r["root_sid"])
	assert.NotEqual(t, m["sid"], r["sid"])
	assert.Equal(t, "tickets:read", r["scope"])
	assert.Equal(t, []any{exResource}, r["target"])
	assert.Equal(t, exApp, r["client_id"])
	assert.Equal(t, exApp, r["sub"])
	assert.Equal(t, "application", r["sub_type"])
	assert.Equal(t, exZone, r["zone_id"])
	// E: session, edge, hop and chain come from the verified claims.
	assert.Equal(t, child.id, r["agent_session_id"])
	assert.Equal(t, e.id, r["delegation_edge_id"])
	assert.Equal(t, 1.0, r["hop_count"])
	assert.Equal(t, []any{
		map[string]any{"application_id": exApp, "agent_session_id": root.id, "delegation_edge_id": e.id},
		map[string]any{"application_id": exApp, "agent_session_id": child.id},
	}, r["delegation_chain"])
	// Lifetime: 900 s clamped by the edge (600 s from its creation).
	assert.Equal(t, float64(exStart.Add(600*time.Second).Unix()), r["exp"])

	env.w.mu.Lock()
	rec := env.w.records[r["sid"].(string)]
	env.w.mu.Unlock()
	require.NotNil(t, rec)
	assert.Equal(t, m["sid"], rec.parentID)
	assert.Equal(t, "application", rec.sessionType)
}

// TestExampleA6 reproduces PROTOCOL §10 A6: replay, a lifecycle token, an
// undeclared operation.
func TestExampleA6(t *testing.T) {
	env := newSTSEnv(t, func(c *worldConfig) { c.Resources[0].Operations = exOperations })
	_, child, e := env.readerEdge()
	tokM := env.mandate(t, child, e, "tickets:read")
	require.Equal(t, 200, env.gateway(t, "GET", "/tickets/42", tokM).StatusCode)

	requireError(t, env.gateway(t, "GET", "/tickets/42", tokM), 401, "invalid_token", "token replay detected")
	tokL := env.token(t, lifecycleForm()).AccessToken
	requireError(t, env.gateway(t, "GET", "/tickets/42", tokL), 401, "invalid_token", "invalid subject_token")
	// A session token is not burned: the same answer again, not a replay.
	requireError(t, env.gateway(t, "GET", "/tickets/42", tokL), 401, "invalid_token", "invalid subject_token")

	resp := env.gateway(t, "GET", "/tickets/7", env.mandate(t, child, e, "tickets:read"))
	m := requireError(t, resp, 403, "operation_not_permitted", "")
	assert.True(t, strings.HasPrefix(m["error_description"].(string),
		"operation GET /tickets/7 is not declared on resource resource://tickets; "), m["error_description"])
	assert.Equal(t, 1, env.seenCount(), "refused requests never reach the upstream")
}

func TestGatewayChecks(t *testing.T) {
	env := newSTSEnv(t)
	_, child, e := env.chain()
	exp := float64(exStart.Add(time.Hour).Unix())
	good := map[string]any{"exp": exp, "zone_id": exZone, "client_id": exApp, "use": "gateway", "jti": "j"}
	with := func(k string, v any) string {
		p := map[string]any{}
		for k, v := range good {
			p[k] = v
		}
		if v == nil {
			delete(p, k)
		} else {
			p[k] = v
		}
		return forge(p)
	}
	mint := func(scope string, ttl int) string {
		f := mintForm(child, e, scope)
		if ttl > 0 {
			f.Set("ttl_seconds", strconv.Itoa(ttl))
		}
		return env.token(t, f).AccessToken
	}
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	foreign := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims(good))
	foreign.Header["kid"] = env.w.keys[0].kid
	foreignTok, err := foreign.SignedString(otherKey)
	require.NoError(t, err)
	// Signed with this zone's key, naming another: checked against that
	// zone's keys (PROTOCOL §8.2 check 10), which lack the kid.
	otherZoneTok, err := signES256(map[string]any{"exp": exp, "zone_id": "zone-other", "client_id": exApp, "use": "gateway", "jti": "j"}, env.w.keys[0])
	require.NoError(t, err)

	cases := []struct {
		name   string
		auth   string
		path   string
		hdr    []string
		status int
		code   string
		desc   string
	}{
		{name: "no authorization", status: 401, code: "invalid_token", desc: "missing bearer token"},
		{name: "basic", auth: "Basic YTpi", status: 401, code: "invalid_token", desc: "missing bearer token"},
		{name: "empty bearer", auth: "Bearer    ", status: 401, code: "invalid_token", desc: "missing bearer token"},
		{name: "bearer beats routing headers", auth: "", hdr: []string{wire.HeaderResource, ""},
			status: 401, code: "invalid_token", desc: "missing bearer token"},
		{name: "too large", auth: "Bearer " + strings.Repeat("a", 4097), status: 401, code: "invalid_token", desc: "bearer token too large"},
		{name: "two segments", auth: "Bearer a.b", status: 401, code: "invalid_token", desc: "malformed bearer token"},
		{name: "four segments", auth: "Bearer " + with("jti", "x") + ".d", status: 401, code: "invalid_token", desc: "malformed bearer token"},
		{name: "bad base64", auth: "Bearer a.!!.c", status: 401, code: "invalid_token", desc: "malformed bearer token"},
		{name: "padded base64", auth: "Bearer a." + base64.URLEncoding.EncodeToString([]byte(`{"exp":99999999999}`)) + ".c",
			status: 401, code: "invalid_token", desc: "malformed bearer token"},
		{name: "payload not JSON", auth: "Bearer a." + base64.RawURLEncoding.EncodeToString([]byte("exp")) + ".c",
			status: 401, code: "invalid_token", desc: "malformed bearer token"},
		{name: "no exp", auth: "Bearer " + with("exp", nil), status: 401, code: "invalid_token", desc: "malformed bearer token"},
		{name: "zero exp", auth: "Bearer " + with("exp", 0), status: 401, code: "invalid_token", desc: "malformed bearer token"},
		{name: "expired", auth: "Bearer " + with("exp", float64(exStart.Unix()-10)),
			status: 401, code: "credential_expired_not_renewable", desc: "credential expiring within pre-flight window"},
		{name: "34 s left", auth: "Bearer " + mint("tickets:read", 34),
			status: 401, code: "credential_expired_not_renewable", desc: "credential expiring within pre-flight window"},
		{name: "pre-flight beats client id", auth: "Bearer " + with("exp", float64(exStart.Unix())), hdr: []string{"X-Caracal-Client-ID", exApp},
			status: 401, code: "credential_expired_not_renewable", desc: "credential expiring within pre-flight window"},
		{name: "client id header", auth: "Bearer " + with("jti", "x"), hdr: []string{"X-Caracal-Client-ID", exApp},
			status: 400, code: "invalid_token", desc: "client identity derives from the bearer token"},
		{name: "client id beats resource", auth: "Bearer " + with("jti", "x"), hdr: []string{"X-Caracal-Client-ID", "x", wire.HeaderResource, ""},
			status: 400, code: "invalid_token", desc: "client identity derives from the bearer token"},
		{name: "no resource header", auth: "Bearer " + with("jti", "x"), hdr: []string{wire.HeaderResource, ""},
			status: 400, code: "invalid_token", desc: "missing routing headers"},
		{name: "blank resource header", auth: "Bearer " + with("jti", "x"), hdr: []string{wire.HeaderResource, "   "},
			status: 400, code: "invalid_token", desc: "missing routing headers"},
		{name: "no zone", auth: "Bearer " + with("zone_id", nil), status: 401, code: "invalid_token", desc: "missing token zone"},
		{name: "bad zone", auth: "Bearer " + with("zone_id", "zone acme"), status: 401, code: "invalid_token", desc: "missing token zone"},
		{name: "no client", auth: "Bearer " + with("client_id", ""), status: 401, code: "invalid_token", desc: "missing token client"},
		{name: "bad client", auth: "Bearer " + with("client_id", "app/x"), status: 401, code: "invalid_token", desc: "missing token client"},
		{name: "encoded dot segment", auth: "Bearer " + with("jti", "x"), path: "/tickets/%2e%2e/admin",
			status: 400, code: "invalid_token", desc: "path traversal not permitted"},
		{name: "double-encoded dot segment", auth: "Bearer " + with("jti", "x"), path: "/tickets/%252e%252e/admin",
			status: 400, code: "invalid_token", desc: "path traversal not permitted"},
		{name: "dot segment behind an invalid escape", auth: "Bearer " + with("jti", "x"), path: "/tickets/%25zz/%252e%252e/admin",
			status: 400, code: "invalid_token", desc: "path traversal not permitted"},
		{name: "encoded dot segment at the end", auth: "Bearer " + with("jti", "x"), path: "/tickets/%2e%2e",
			status: 400, code: "invalid_token", desc: "path traversal not permitted"},
		{name: "dot segment encoded past the decoding rounds", auth: "Bearer " + with("jti", "x"),
			path:   "/tickets/%" + strings.Repeat("25", 9) + "2e%2e/admin",
			status: 400, code: "invalid_token", desc: "path traversal not permitted"},
		{name: "escapes that decode to no dot segment", auth: "Bearer " + with("jti", "x"), path: "/tickets/%252e%2541%20x/42",
			status: 401, code: "invalid_token", desc: "bearer signature invalid"},
		{name: "single dot", auth: "Bearer " + with("jti", "x"), path: "/tickets/%2E/42",
			status: 400, code: "invalid_token", desc: "path traversal not permitted"},
		{name: "backslash", auth: "Bearer " + with("jti", "x"), path: "/tickets%5c42",
			status: 400, code: "invalid_token", desc: "path traversal not permitted"},
		{name: "unsigned", auth: "Bearer " + with("jti", "x"), status: 401, code: "invalid_token", desc: "bearer signature invalid"},
		{name: "signed by another key", auth: "Bearer " + foreignTok, status: 401, code: "invalid_token", desc: "bearer signature invalid"},
		{name: "signed by the zone's key for another zone", auth: "Bearer " + otherZoneTok, status: 401, code: "invalid_token", desc: "bearer signature invalid"},
		{name: "tampered signature", auth: "Bearer " + tamper(mint("tickets:read", 0)),
			status: 401, code: "invalid_token", desc: "bearer signature invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.path
			if p == "" {
				p = "/tickets/42"
			}
			hdr := append([]string{"Authorization", tc.auth}, tc.hdr...)
			resp := env.gateway(t, http.MethodGet, p, "", hdr...)
			requireError(t, resp, tc.status, tc.code, tc.desc)
		})
	}

	t.Run("35 s left and a lower-case scheme pass", func(t *testing.T) {
		tok := mint("tickets:read", 35)
		resp := env.gateway(t, http.MethodGet, "/tickets/42", "", "Authorization", "bearer  "+tok+" ")
		assert.Equal(t, 200, resp.StatusCode, readBody(t, resp))
		assert.Equal(t, "35", resp.Header.Get(wire.HeaderTokenExpiresIn))
	})
	t.Run("reserved path", func(t *testing.T) {
		resp := env.gateway(t, http.MethodGet, "/health", "")
		assert.Equal(t, 200, resp.StatusCode)
	})
	assert.Equal(t, 1, env.seenCount())
}

func TestGatewayRevocation(t *testing.T) {
	cases := map[string]struct {
		act    func(env *stsEnv, root, child *session, e *edge, tok string)
		status int
		code   string
		desc   string
	}{
		"mandate record revoked": {act: func(env *stsEnv, _, _ *session, _ *edge, tok string) {
			env.w.mu.Lock()
			env.w.revokeRecord(claims(t, tok)["sid"].(string), "test")
			env.w.mu.Unlock()
		}, status: 401, code: "invalid_token", desc: "session revoked"},
		"session terminated": {act: func(env *stsEnv, _, child *session, _ *edge, _ string) {
			require.NoError(t, env.w.terminate(child.id))
		}, status: 401, code: "invalid_token", desc: "session revoked"},
		"edge revoked": {act: func(env *stsEnv, _, _ *session, e *edge, _ string) {
			env.w.mu.Lock()
			env.w.revokeEdge(e)
			env.w.mu.Unlock()
		}, status: 401, code: "invalid_token", desc: "session revoked"},
		// Suspended sessions are not in the revocation cache; the STS
		// liveness check refuses them.
		"session suspended": {act: func(env *stsEnv, _, child *session, _ *edge, _ string) {
			require.NoError(t, env.w.suspend(child.id))
		}, status: 403, code: "access_denied", desc: "delegation target inactive or unauthorized"},
		"source suspended": {act: func(env *stsEnv, root, _ *session, _ *edge, _ string) {
			env.w.mu.Lock()
			root.status = wire.StatusSuspended
			env.w.mu.Unlock()
		}, status: 403, code: "access_denied", desc: "delegation source inactive or expired"},
		"source task expired": {act: func(env *stsEnv, root, _ *session, _ *edge, _ string) {
			env.w.mu.Lock()
			root.status = wire.StatusExpired
			env.w.mu.Unlock()
		}, status: 403, code: "access_denied", desc: "delegation source inactive or expired"},
		"policy narrowed after the mint": {act: func(env *stsEnv, _, _ *session, _ *edge, _ string) {
			env.w.mu.Lock()
			env.w.policy.Grants[exResource].Roles["reader"] = []string{"tickets:list"}
			env.w.mu.Unlock()
		}, status: 403, code: "access_denied", desc: "policy denied (role_scope_mismatch)"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			env := newSTSEnv(t)
			root, child, e := env.readerEdge()
			tok := env.mandate(t, child, e, "tickets:read")
			tc.act(env, root, child, e, tok)
			requireError(t, env.gateway(t, "GET", "/tickets/42", tok), tc.status, tc.code, tc.desc)
		})
	}
}

func TestGatewayExchangeRules(t *testing.T) {
	env := newSTSEnv(t, func(c *worldConfig) {
		c.Resources[0].Operations = map[string]string{"GET /tickets/42": "tickets:read", "POST /tickets": "tickets:write"}
		c.Resources = append(c.Resources, Resource{Identifier: "resource://open", Scopes: []string{"open:read"},
			Upstream: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { rw.WriteHeader(http.StatusNoContent) })})
		c.Policy.Grants["resource://open"] = resourceGrant{Application: exApp, Roles: map[string][]string{"reader": {"open:read"}}}
	})
	_, child, e := env.readerEdge()
	t.Run("operation scope missing from the mandate", func(t *testing.T) {
		resp := env.gateway(t, "POST", "/tickets", env.mandate(t, child, e, "tickets:read"))
		m := requireError(t, resp, 403, "operation_not_permitted", "")
		assert.Contains(t, m["error_description"], "tickets:write")
	})
	t.Run("method is part of the operation", func(t *testing.T) {
		requireError(t, env.gateway(t, "DELETE", "/tickets/42", env.mandate(t, child, e, "tickets:read")), 403, "operation_not_permitted", "")
	})
	t.Run("resource header by DB id", func(t *testing.T) {
		resp := env.gateway(t, "GET", "/tickets/42", env.mandate(t, child, e, "tickets:read"), wire.HeaderResource, exResID)
		requireError(t, resp, 403, "access_denied", "resource upstream not configured")
	})
	t.Run("resource header outside the mandate", func(t *testing.T) {
		resp := env.gateway(t, "GET", "/x", env.mandate(t, child, e, "tickets:read"), wire.HeaderResource, "resource://open")
		requireError(t, resp, 403, "access_denied", "policy denied")
	})
	t.Run("transport uniform resource", func(t *testing.T) {
		root := env.session(exApp)
		oc := env.session(exApp, "reader")
		oe := env.edge(root, oc, nil, []string{"open:read"}, wire.Constraints{Resources: []string{"resource://open"}}, time.Hour)
		f := baseForm("scope", "open:read", "resource", "resource://open", "agent_session_id", oc.id, "delegation_edge_id", oe.id)
		tok := env.token(t, f).AccessToken
		resp := env.gateway(t, "PATCH", "/any/path", tok, wire.HeaderResource, "resource://open")
		assert.Equal(t, http.StatusNoContent, resp.StatusCode, readBody(t, resp))
		assert.NotEmpty(t, resp.Header.Get(wire.HeaderTokenExpiresIn))
	})
}

func TestGatewayMintBudget(t *testing.T) {
	// The Gateway's re-exchange counts against the same (resource,
	// application) mint budget as the client's mint.
	env := newSTSEnv(t, func(c *worldConfig) { c.Limits.MintPerMinute = 1 })
	_, child, e := env.readerEdge()
	tok := env.mandate(t, child, e, "tickets:read")
	requireError(t, env.gateway(t, "GET", "/tickets/42", tok), 403, "access_denied", "policy denied")
}

func TestGatewayRequestID(t *testing.T) {
	env := newSTSEnv(t)
	for name, tc := range map[string]struct {
		sent  string
		adopt bool
	}{
		"printable":   {"req-1:abc/~", true},
		"128 chars":   {strings.Repeat("a", 128), true},
		"129 chars":   {strings.Repeat("a", 129), false},
		"with spaces": {"req 1", false},
		"non-ascii":   {"req-é", false},
	} {
		t.Run(name, func(t *testing.T) {
			resp := env.gateway(t, "GET", "/tickets/42", "", wire.HeaderRequestID, tc.sent)
			m := requireError(t, resp, 401, "invalid_token", "missing bearer token")
			if tc.adopt {
				assert.Equal(t, tc.sent, m["requestId"])
				return
			}
			u, err := uuid.Parse(m["requestId"].(string))
			require.NoError(t, err)
			assert.Equal(t, uuid.Version(4), u.Version())
		})
	}
}

// FuzzGatewayRequest feeds arbitrary bearers, paths and resource headers to
// the Gateway: it never panics and refuses with a JSON error body.
func FuzzGatewayRequest(f *testing.F) {
	f.Add("Bearer a.b.c", "/tickets/42", exResource)
	f.Add("Bearer "+forge(map[string]any{"exp": 1e12, "zone_id": exZone, "client_id": exApp}), "/%2e%2e", exResource)
	f.Add("bearer x", "/", "")
	f.Add("Bearer e30.e30.e30", "/a\\b", "r")
	f.Add("Bearer ..", "/%zz", "resource://tickets")
	w, err := newWorld(exampleConfig())
	require.NoError(f, err)
	h := w.gatewayRoutes()[0].handler
	f.Fuzz(func(t *testing.T, auth, path, res string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL = &url.URL{Path: path}
		req.Header.Set("Authorization", auth)
		req.Header.Set(wire.HeaderResource, res)
		rec := httptest.NewRecorder()
		h(rec, req)
		if path == "/health" || path == "/ready" {
			return
		}
		require.GreaterOrEqual(t, rec.Code, 400)
		require.Less(t, rec.Code, 500)
		var m map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &m), rec.Body.String())
		require.NotEmpty(t, m["error"])
		require.Equal(t, rec.Header().Get(wire.HeaderRequestID), m["requestId"])
	})
}

// BenchmarkGovernedCall measures one governed call against the stack's
// handlers without sockets: the client's mint plus the Gateway call (its
// in-process exchange and the upstream).
func BenchmarkGovernedCall(b *testing.B) {
	cfg := exampleConfig()
	cfg.Limits.MintPerMinute = 1 << 30
	cfg.Resources[0].Upstream = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(rw, "ok")
	})
	w, err := newWorld(cfg)
	require.NoError(b, err)
	env := &stsEnv{w: w, clock: NewFakeClock(time.Now())}
	_, child, e := env.readerEdge()
	form := mintForm(child, e, "tickets:read").Encode()
	gw := w.gatewayRoutes()[0].handler
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/oauth/2/token", strings.NewReader(form))
		req.Header.Set("Content-Type", formType)
		rec := httptest.NewRecorder()
		w.handleToken(rec, req)
		var tr wire.TokenResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &tr); err != nil || rec.Code != 200 {
			b.Fatalf("mint: %d %s", rec.Code, rec.Body)
		}
		req = httptest.NewRequest(http.MethodGet, "/tickets/42", nil)
		req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
		req.Header.Set(wire.HeaderResource, exResource)
		rec = httptest.NewRecorder()
		gw(rec, req)
		if rec.Code != 200 {
			b.Fatalf("gateway: %d %s", rec.Code, rec.Body)
		}
	}
}

func TestGatewayMandateOnlyForItsTarget(t *testing.T) {
	// A mandate is good only for a resource in its target, even when the
	// edge, the roles and the scopes would allow one for the other resource.
	const mirror = "resource://mirror"
	env := newSTSEnv(t, func(c *worldConfig) {
		c.Resources = append(c.Resources, Resource{Identifier: mirror, Scopes: []string{"tickets:read"},
			Upstream: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { rw.WriteHeader(http.StatusNoContent) })})
		c.Policy.Grants[mirror] = resourceGrant{Application: exApp, Roles: map[string][]string{"reader": {"tickets:read"}}}
	})
	root, child := env.session(exApp, "dispatcher"), env.session(exApp, "reader")
	e := env.edge(root, child, nil, []string{"tickets:read"}, wire.Constraints{Resources: []string{exResource, mirror}}, time.Hour)

	f := baseForm("scope", "tickets:read", "resource", mirror, "agent_session_id", child.id, "delegation_edge_id", e.id)
	resp := env.gateway(t, "GET", "/x", env.token(t, f).AccessToken, wire.HeaderResource, mirror)
	require.Equal(t, http.StatusNoContent, resp.StatusCode, readBody(t, resp))

	tok := env.mandate(t, child, e, "tickets:read")
	requireError(t, env.gateway(t, "GET", "/x", tok, wire.HeaderResource, mirror), 403, "access_denied", "policy denied (resource_not_granted)")
	assert.Equal(t, 0, env.seenCount())
}
