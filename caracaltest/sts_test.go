package caracaltest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/wire"
)

const formType = "application/x-www-form-urlencoded"

func TestTokenEnvelopeRules(t *testing.T) {
	env := newSTSEnv(t)
	good := lifecycleForm().Encode()
	with := func(kv ...string) string {
		f := lifecycleForm()
		for i := 0; i+1 < len(kv); i += 2 {
			f.Add(kv[i], kv[i+1])
		}
		return f.Encode()
	}
	without := func(k string) string {
		f := lifecycleForm()
		f.Del(k)
		return f.Encode()
	}
	replace := func(k, v string) string {
		f := lifecycleForm()
		f.Set(k, v)
		return f.Encode()
	}
	// pad fills a form body up to exactly n bytes.
	pad := func(body string, n int) string {
		body += "&pad="
		return body + strings.Repeat("a", n-len(body))
	}
	cases := []struct {
		name        string
		path        string
		body, ctype string
		hdr         []string
		status      int
		code, desc  string
	}{
		{name: "query string", path: "/oauth/2/token?scope=x", body: good, ctype: formType,
			status: 400, code: "invalid_token", desc: "query parameters are not allowed"},
		{name: "empty query", path: "/oauth/2/token?", body: good, ctype: formType,
			status: 400, code: "invalid_token", desc: "query parameters are not allowed"},
		{name: "query beats content type", path: "/oauth/2/token?a=b", body: good, ctype: "application/json",
			status: 400, code: "invalid_token", desc: "query parameters are not allowed"},
		{name: "no content type", body: good,
			status: 415, code: "invalid_token", desc: "application/x-www-form-urlencoded content type is required"},
		{name: "json content type", body: `{}`, ctype: "application/json",
			status: 415, code: "invalid_token", desc: "application/x-www-form-urlencoded content type is required"},
		{name: "multipart", body: good, ctype: "multipart/form-data; boundary=x",
			status: 415, code: "invalid_token", desc: "application/x-www-form-urlencoded content type is required"},
		{name: "body too large", body: good + "&pad=" + strings.Repeat("a", 64<<10), ctype: formType,
			status: 413, code: "payload_too_large", desc: "request body too large"},
		{name: "size beats form parse", body: "%zz" + strings.Repeat("a", 64<<10), ctype: formType,
			status: 413, code: "payload_too_large", desc: "request body too large"},
		{name: "bad escape", body: good + "&x=%zz", ctype: formType,
			status: 400, code: "invalid_token", desc: "malformed request body"},
		{name: "semicolon", body: good + ";x=1", ctype: formType,
			status: 400, code: "invalid_token", desc: "malformed request body"},
		{name: "duplicate scope", body: with("scope", "tickets:read"), ctype: formType,
			status: 400, code: "invalid_token", desc: "duplicate form field: scope"},
		{name: "duplicate client_secret", body: with("client_secret", "x"), ctype: formType,
			status: 400, code: "invalid_token", desc: "duplicate form field: client_secret"},
		{name: "duplicate beats unsupported", body: with("actor_token", "a", "zone_id", "z"), ctype: formType,
			status: 400, code: "invalid_token", desc: "duplicate form field: zone_id"},
		{name: "actor_token", body: with("actor_token", "a"), ctype: formType,
			status: 400, code: "invalid_token"},
		{name: "client_assertion", body: with("client_assertion", ""), ctype: formType,
			status: 400, code: "invalid_token"},
		{name: "client_assertion_type", body: with("client_assertion_type", "x"), ctype: formType,
			status: 400, code: "invalid_token"},
		{name: "ttl not integer", body: with("ttl_seconds", "ten"), ctype: formType,
			status: 400, code: "invalid_token", desc: "invalid ttl_seconds"},
		{name: "ttl fraction", body: with("ttl_seconds", "1.5"), ctype: formType,
			status: 400, code: "invalid_token", desc: "invalid ttl_seconds"},
		{name: "gateway signature", body: good, ctype: formType, hdr: []string{"X-Caracal-Gateway-Signature", "00"},
			status: 401, code: "access_denied", desc: "invalid gateway exchange signature"},
		{name: "blank resource", body: with("resource", "  "), ctype: formType,
			status: 400, code: "invalid_token", desc: "resource must not be empty"},
		{name: "grant type missing", body: without("grant_type"), ctype: formType,
			status: 400, code: "invalid_token", desc: "unsupported grant_type"},
		{name: "body of exactly 64 KiB is read", body: pad(replace("grant_type", "client_credentials"), 64<<10), ctype: formType,
			status: 400, code: "invalid_token", desc: "unsupported grant_type"},
		{name: "grant type wrong", body: replace("grant_type", "client_credentials"), ctype: formType,
			status: 400, code: "invalid_token", desc: "unsupported grant_type"},
		{name: "subject token type unknown", body: with("subject_token", "x", "subject_token_type", "urn:x"), ctype: formType,
			status: 400, code: "invalid_token", desc: "unsupported subject_token_type"},
		{name: "subject token without type", body: with("subject_token", "x"), ctype: formType,
			status: 400, code: "invalid_token", desc: "subject_token_type is required with subject_token"},
		{name: "type without subject token", body: with("subject_token_type", wire.TokenTypeAccessToken), ctype: formType,
			status: 400, code: "invalid_token", desc: "subject_token is required with subject_token_type"},
		{name: "subject token on a direct call", body: with("subject_token", "x", "subject_token_type", wire.TokenTypeIDToken), ctype: formType,
			status: 401, code: "invalid_token", desc: "invalid subject_token"},
		{name: "no resource", body: without("resource"), ctype: formType,
			status: 400, code: "invalid_token", desc: "at least one resource is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.path
			if p == "" {
				p = "/oauth/2/token"
			}
			req, err := http.NewRequest(http.MethodPost, env.sts.URL+p, strings.NewReader(tc.body))
			require.NoError(t, err)
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			for i := 0; i+1 < len(tc.hdr); i += 2 {
				req.Header.Set(tc.hdr[i], tc.hdr[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			m := requireError(t, resp, tc.status, tc.code, tc.desc)
			if tc.desc == "" {
				assert.Contains(t, m["error_description"], "is not supported")
			}
		})
	}

	t.Run("method bound", func(t *testing.T) {
		resp, err := http.Get(env.sts.URL + "/oauth/2/token")
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
		assert.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	})
	t.Run("content type parameters allowed", func(t *testing.T) {
		resp := env.postRaw(t, good, "application/x-www-form-urlencoded; charset=utf-8")
		assert.Equal(t, http.StatusOK, resp.StatusCode, readBody(t, resp))
	})
	t.Run("resources trimmed deduplicated sorted", func(t *testing.T) {
		f := baseForm("scope", wire.ScopeLifecycle, "resource", " resource://tickets ", "resource", exResource,
			"resource", "resource://nope")
		tr := env.token(t, f)
		assert.Equal(t, []string{exResource}, tr.TargetResources)
	})
}

func TestTokenRequestID(t *testing.T) {
	env := newSTSEnv(t)
	resp := env.post(t, baseForm("grant_type", "x"), wire.HeaderRequestID, "any thing at all")
	assert.Equal(t, "any thing at all", resp.Header.Get(wire.HeaderRequestID))
	requireError(t, resp, 400, "invalid_token", "duplicate form field: grant_type")

	resp = env.post(t, lifecycleForm())
	id, err := uuid.Parse(resp.Header.Get(wire.HeaderRequestID))
	require.NoError(t, err)
	assert.Equal(t, uuid.Version(7), id.Version())
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestExampleA0 reproduces PROTOCOL §10 A0 request for request.
func TestExampleA0(t *testing.T) {
	env := newSTSEnv(t)
	body := "application_id=app-reporter&client_secret=s3cr3t&grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&resource=resource%3A%2F%2Ftickets&scope=agent%3Alifecycle&zone_id=zone-acme"
	resp := env.postRaw(t, body, formType)
	raw := readBody(t, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode, raw)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var tr map[string]any
	require.NoError(t, json.Unmarshal([]byte(raw), &tr))
	tok, _ := tr["access_token"].(string)
	delete(tr, "access_token")
	assert.Equal(t, map[string]any{
		"token_type": "Bearer", "expires_in": 900.0, "scope": "agent:lifecycle",
		"issued_token_type": wire.TokenTypeAccessToken, "target_resources": []any{exResource},
	}, tr)

	h := jwtHeader(t, tok)
	assert.Equal(t, "ES256", h["alg"])
	assert.Equal(t, env.w.keys[0].kid, h["kid"])
	c := claims(t, tok)
	sid, _ := c["sid"].(string)
	jti, _ := c["jti"].(string)
	for _, id := range []string{sid, jti} {
		u, err := uuid.Parse(id)
		require.NoError(t, err)
		assert.Equal(t, uuid.Version(7), u.Version())
	}
	delete(c, "sid")
	delete(c, "jti")
	assert.Equal(t, map[string]any{
		"iss": exIssuer, "sub": exApp, "aud": []any{exIssuer}, "exp": 1787393700.0, "iat": 1787392800.0,
		"zone_id": exZone, "client_id": exApp, "scope": "agent:lifecycle", "root_sid": sid,
		"use": "session", "sub_type": "application", "target": []any{exResource},
	}, c)

	env.w.mu.Lock()
	rec := env.w.records[sid]
	env.w.mu.Unlock()
	require.NotNil(t, rec)
	assert.Equal(t, "application", rec.sessionType)
	assert.Equal(t, exApp, rec.subjectID)
	assert.Empty(t, rec.parentID)
	assert.Equal(t, wire.StatusActive, rec.status)
	assert.Equal(t, time.Date(2026, 8, 22, 10, 15, 0, 0, time.UTC), rec.expiresAt.UTC())
}

func TestLifecycleRules(t *testing.T) {
	env := newSTSEnv(t, func(c *worldConfig) {
		c.Resources = append(c.Resources,
			Resource{Identifier: "resource://declared", Scopes: []string{wire.ScopeLifecycle}},
			Resource{Identifier: "resource://foreign", Scopes: []string{wire.ScopeLifecycle}},
			Resource{Identifier: controlAudience, Scopes: []string{wire.ScopeLifecycle}},
		)
		c.Policy.Grants["resource://declared"] = resourceGrant{Application: exApp}
		c.Policy.Grants["resource://foreign"] = resourceGrant{Application: "app-other"}
		c.Policy.Grants[controlAudience] = resourceGrant{Application: exApp}
	})
	cases := []struct {
		name    string
		form    url.Values
		status  int
		desc    string
		target  []string
		expires int
	}{
		{name: "default lifetime", form: lifecycleForm(), status: 200, target: []string{exResource}, expires: 900},
		{name: "requested lifetime", form: baseForm("scope", "agent:lifecycle", "resource", exResource, "ttl_seconds", "1800"),
			status: 200, target: []string{exResource}, expires: 1800},
		{name: "ttl zero is the default", form: baseForm("scope", "agent:lifecycle", "resource", exResource, "ttl_seconds", "0"),
			status: 200, target: []string{exResource}, expires: 900},
		{name: "ttl cap", form: baseForm("scope", "agent:lifecycle", "resource", exResource, "ttl_seconds", "3600"),
			status: 200, target: []string{exResource}, expires: 3600},
		{name: "ttl negative", form: baseForm("scope", "agent:lifecycle", "resource", exResource, "ttl_seconds", "-1"),
			status: 400, desc: "ttl_seconds must be positive"},
		{name: "ttl over cap", form: baseForm("scope", "agent:lifecycle", "resource", exResource, "ttl_seconds", "3601"),
			status: 400, desc: "ttl_seconds exceeds token TTL cap"},
		{name: "ttl over cap past the nanosecond range", form: baseForm("scope", "agent:lifecycle", "resource", exResource, "ttl_seconds", "18446744074"),
			status: 400, desc: "ttl_seconds exceeds token TTL cap"},
		{name: "lifecycle declared without upstream", form: baseForm("scope", "agent:lifecycle", "resource", "resource://declared"),
			status: 200, target: []string{"resource://declared"}, expires: 900},
		{name: "allowed subset", form: baseForm("scope", "agent:lifecycle", "resource", exResource, "resource", "resource://plain",
			"resource", "resource://missing", "resource", "resource://declared"),
			status: 200, target: []string{"resource://declared", exResource}, expires: 900},
		{name: "matched by DB id", form: baseForm("scope", "agent:lifecycle", "resource", exResID),
			status: 200, target: []string{exResource}, expires: 900},
		{name: "lifecycle not mintable without upstream", form: baseForm("scope", "agent:lifecycle", "resource", "resource://plain"),
			status: 403, desc: "policy denied"},
		{name: "unknown resource", form: baseForm("scope", "agent:lifecycle", "resource", "resource://missing"),
			status: 403, desc: "policy denied"},
		{name: "scope set not lifecycle", form: baseForm("scope", "agent:lifecycle tickets:read", "resource", exResource),
			status: 403, desc: "policy denied (no_rule_matched)"},
		{name: "business scope without edge", form: baseForm("scope", "tickets:read", "resource", exResource),
			status: 403, desc: "policy denied (no_rule_matched)"},
		{name: "session without edge", form: baseForm("scope", "agent:lifecycle", "resource", exResource, "agent_session_id", "s-1"),
			status: 403, desc: "policy denied (no_rule_matched)"},
		{name: "edge without session", form: baseForm("scope", "tickets:read", "resource", exResource, "delegation_edge_id", "e-1"),
			status: 403, desc: "delegation requires a target Session"},
		{name: "not the owner", form: baseForm("scope", "agent:lifecycle", "resource", "resource://foreign"),
			status: 403, desc: "policy denied (resource_not_granted)"},
		{name: "control audience", form: baseForm("scope", "agent:lifecycle", "resource", controlAudience),
			status: 403, desc: "the control resource is mintable only by a control key"},
		{name: "unknown authority record", form: baseForm("scope", "agent:lifecycle", "resource", exResource, "session_id", "nope"),
			status: 403, desc: "authority record inactive or expired"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := env.post(t, tc.form)
			if tc.status != 200 {
				code := "access_denied"
				if tc.status == 400 {
					code = "invalid_token"
				}
				requireError(t, resp, tc.status, code, tc.desc)
				return
			}
			raw := readBody(t, resp)
			require.Equal(t, 200, resp.StatusCode, raw)
			var tr wire.TokenResponse
			require.NoError(t, json.Unmarshal([]byte(raw), &tr))
			assert.Equal(t, tc.target, tr.TargetResources)
			assert.Equal(t, tc.expires, tr.ExpiresIn)
			c := claims(t, tr.AccessToken)
			assert.Equal(t, float64(exStart.Unix()+int64(tc.expires)), c["exp"])
		})
	}

	t.Run("authority record of the caller", func(t *testing.T) {
		sid := claims(t, env.token(t, lifecycleForm()).AccessToken)["sid"].(string)
		env.token(t, baseForm("scope", "agent:lifecycle", "resource", exResource, "session_id", sid))
		f := baseForm("scope", "agent:lifecycle", "resource", exResource, "session_id", sid)
		f.Set("application_id", "app-other")
		f.Set("client_secret", "other-secret")
		requireError(t, env.post(t, f), 403, "access_denied", "authority record not owned by caller")
	})
}

func TestAuthentication(t *testing.T) {
	env := newSTSEnv(t)
	set := func(kv ...string) url.Values {
		f := lifecycleForm()
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				f.Del(kv[i])
				continue
			}
			f.Set(kv[i], kv[i+1])
		}
		return f
	}
	cases := []struct {
		name   string
		form   url.Values
		status int
		code   string
		desc   string
	}{
		{"no application", set("application_id", ""), 401, "access_denied", "invalid client credentials"},
		{"blank application", set("application_id", "   "), 401, "access_denied", "invalid client credentials"},
		{"unknown application", set("application_id", "app-nope"), 401, "access_denied", "invalid client credentials"},
		{"wrong secret", set("client_secret", "wrong"), 401, "access_denied", "invalid client credentials"},
		{"no secret", set("client_secret", ""), 401, "access_denied", "invalid client credentials"},
		{"no zone", set("zone_id", ""), 401, "access_denied", "invalid client credentials"},
		{"other zone, wrong secret", set("zone_id", "zone-b", "client_secret", "wrong"), 401, "access_denied", "invalid client credentials"},
		{"other zone, right secret", set("zone_id", "zone-b"), 403, "zone_invalid", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := requireError(t, env.post(t, tc.form), tc.status, tc.code, tc.desc)
			if tc.code == "zone_invalid" {
				assert.Contains(t, m["error_description"], exZone)
				assert.Contains(t, m["error_description"], "zone-b")
			}
		})
	}
	t.Run("application id trimmed", func(t *testing.T) {
		env.token(t, set("application_id", " "+exApp+" "))
	})
}

func TestAuthenticationLockout(t *testing.T) {
	env := newSTSEnv(t, func(c *worldConfig) { c.Limits.AuthFailures = 3 })
	wrong := lifecycleForm()
	wrong.Set("client_secret", "wrong")
	for range 3 {
		requireError(t, env.post(t, wrong), 401, "access_denied", "invalid client credentials")
	}
	// At the limit, not over it: the right secret still works.
	env.token(t, lifecycleForm())
	requireError(t, env.post(t, wrong), 401, "access_denied", "invalid client credentials")
	// Over the limit: blocked for 60 s, even with the right secret, before
	// any other check of the exchange.
	requireError(t, env.post(t, lifecycleForm()), 429, "provider_rate_limited", "authentication rate limit exceeded")
	requireError(t, env.post(t, baseForm("scope", "x")), 429, "provider_rate_limited", "authentication rate limit exceeded")
	// Other applications are not affected.
	other := lifecycleForm()
	other.Set("application_id", "app-other")
	requireError(t, env.post(t, other), 401, "access_denied", "invalid client credentials")
	// Envelope errors still come first.
	requireError(t, env.post(t, baseForm("grant_type", "x")), 400, "invalid_token", "duplicate form field: grant_type")

	env.clock.Advance(59 * time.Second)
	requireError(t, env.post(t, lifecycleForm()), 429, "provider_rate_limited", "authentication rate limit exceeded")
	env.clock.Advance(time.Second)
	env.token(t, lifecycleForm())
}

func TestJWKS(t *testing.T) {
	env := newSTSEnv(t)
	get := func(q string) *http.Response {
		resp, err := http.Get(env.sts.URL + "/.well-known/jwks.json" + q)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	plain := func(resp *http.Response, status int, code, desc string) {
		t.Helper()
		require.Equal(t, status, resp.StatusCode)
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(readBody(t, resp)), &m))
		assert.Equal(t, map[string]any{"error": code, "error_description": desc}, m)
		assert.Empty(t, resp.Header.Get(wire.HeaderRequestID))
	}
	plain(get("?zone_id="+exZone), 404, "resource_not_found", "zone signing key not found")
	tok := env.token(t, lifecycleForm()).AccessToken
	plain(get(""), 400, "invalid_token", "zone_id is required")
	plain(get("?zone_id=zone-other"), 404, "resource_not_found", "zone signing key not found")

	resp := get("?zone_id=" + exZone)
	require.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "public, max-age=300, must-revalidate", resp.Header.Get("Cache-Control"))
	var set wire.JWKS
	require.NoError(t, json.Unmarshal([]byte(readBody(t, resp)), &set))
	require.Len(t, set.Keys, 1)
	k := set.Keys[0]
	assert.Equal(t, wire.JWK{Kty: "EC", Crv: "P-256", Use: "sig", Kid: env.w.keys[0].kid, Alg: "ES256", X: k.X, Y: k.Y}, k)

	// The published key verifies the token.
	x, err := base64.RawURLEncoding.DecodeString(k.X)
	require.NoError(t, err)
	y, err := base64.RawURLEncoding.DecodeString(k.Y)
	require.NoError(t, err)
	pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
	parsed, err := jwt.Parse(tok, func(jt *jwt.Token) (any, error) {
		assert.Equal(t, k.Kid, jt.Header["kid"])
		return pub, nil
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(env.clock.Now), jwt.WithIssuer(exIssuer), jwt.WithAudience(exIssuer))
	require.NoError(t, err)
	assert.True(t, parsed.Valid)
}

// FuzzTokenForm feeds arbitrary bodies and content types to the token
// endpoint: it never panics and always answers 200 or a 4xx JSON error body.
func FuzzTokenForm(f *testing.F) {
	f.Add(lifecycleForm().Encode(), formType)
	f.Add("grant_type=x&grant_type=y", formType)
	f.Add("resource=%20&resource=a", formType+"; charset=utf-8")
	f.Add("a=%zz;b", formType)
	f.Add("ttl_seconds=99999999999999999999", formType)
	f.Add("subject_token=a&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aid_token", formType)
	f.Add(baseForm("scope", "tickets:read", "resource", exResource, "agent_session_id", "s", "delegation_edge_id", "e",
		"approval_id", "x", "session_id", "r").Encode(), formType)
	f.Add("", "")
	f.Add("{}", "application/json")
	f.Add("x", "text/plain; =")
	w, err := newWorld(exampleConfig())
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, body, ctype string) {
		req := httptest.NewRequest(http.MethodPost, "/oauth/2/token", strings.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		rec := httptest.NewRecorder()
		w.handleToken(rec, req)
		require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
		var m map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &m), rec.Body.String())
		if rec.Code == http.StatusOK {
			require.NotEmpty(t, m["access_token"])
			return
		}
		require.GreaterOrEqual(t, rec.Code, 400)
		require.Less(t, rec.Code, 500, m)
		require.NotEmpty(t, m["error"])
		require.Equal(t, rec.Header().Get(wire.HeaderRequestID), m["requestId"])
	})
}

// BenchmarkLifecycleToken measures one lifecycle exchange against the token
// handler without sockets.
func BenchmarkLifecycleToken(b *testing.B) {
	cfg := exampleConfig()
	cfg.Limits.MintPerMinute = 1 << 30
	cfg.Resources[0].Upstream = http.NotFoundHandler()
	w, err := newWorld(cfg)
	require.NoError(b, err)
	form := lifecycleForm().Encode()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/oauth/2/token", strings.NewReader(form))
		req.Header.Set("Content-Type", formType)
		rec := httptest.NewRecorder()
		w.handleToken(rec, req)
		if rec.Code != 200 {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}
