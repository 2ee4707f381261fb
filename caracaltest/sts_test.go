package caracaltest

import (
	"context"
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
	"testing/synctest"
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
		c.Policy.Grants["resource://declared"] = ResourceGrant{Application: exApp}
		c.Policy.Grants["resource://foreign"] = ResourceGrant{Application: "app-other"}
		c.Policy.Grants[controlAudience] = ResourceGrant{Application: exApp}
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

// TestExampleA4 reproduces PROTOCOL §10 A4 and its failure variants.
func TestExampleA4(t *testing.T) {
	env := newSTSEnv(t)
	root := env.session(exApp, "dispatcher")
	child := env.session(exApp, "reader")
	env.clock.Advance(2 * time.Second)
	e := env.edge(root, child, nil, []string{"tickets:read"}, wire.Constraints{Resources: []string{exResource}, TTLSeconds: 600}, 600*time.Second)
	env.clock.Advance(1500 * time.Millisecond)

	body := "agent_session_id=" + child.id + "&application_id=app-reporter&client_secret=s3cr3t&delegation_edge_id=" + e.id +
		"&grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&resource=resource%3A%2F%2Ftickets&scope=tickets%3Aread&zone_id=zone-acme"
	resp := env.postRaw(t, body, formType)
	raw := readBody(t, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode, raw)
	var tr wire.TokenResponse
	require.NoError(t, json.Unmarshal([]byte(raw), &tr))
	assert.Equal(t, 598, tr.ExpiresIn, "the edge's remaining life, truncated")
	assert.Equal(t, "tickets:read", tr.Scope)
	assert.Equal(t, []string{exResource}, tr.TargetResources)
	assert.Equal(t, "Bearer", tr.TokenType)

	c := claims(t, tr.AccessToken)
	assert.Equal(t, "gateway", c["use"])
	assert.Equal(t, []any{exIssuer}, c["aud"])
	assert.Equal(t, exApp, c["sub"])
	assert.Equal(t, exApp, c["client_id"])
	assert.Equal(t, "application", c["sub_type"])
	assert.Equal(t, "tickets:read", c["scope"])
	assert.Equal(t, c["sid"], c["root_sid"])
	assert.Equal(t, []any{exResource}, c["target"])
	assert.Equal(t, child.id, c["agent_session_id"])
	assert.Equal(t, e.id, c["delegation_edge_id"])
	assert.Equal(t, root.id, c["source_session_id"])
	assert.Equal(t, child.id, c["target_session_id"])
	assert.Equal(t, []any{e.id}, c["delegation_path"])
	assert.Equal(t, []any{
		map[string]any{"application_id": exApp, "agent_session_id": root.id, "delegation_edge_id": e.id},
		map[string]any{"application_id": exApp, "agent_session_id": child.id},
	}, c["delegation_chain"])
	assert.Equal(t, 1.0, c["hop_count"])
	assert.Equal(t, float64(env.w.epoch), c["delegation_graph_epoch"])

	t.Run("each mint is a new token", func(t *testing.T) {
		again := env.token(t, mintForm(child, e, "tickets:read"))
		assert.NotEqual(t, c["jti"], claims(t, again.AccessToken)["jti"])
		assert.NotEqual(t, c["sid"], claims(t, again.AccessToken)["sid"])
	})
	t.Run("label not a granted role", func(t *testing.T) {
		stranger := env.session(exApp, "dispatcher")
		se := env.edge(root, stranger, nil, []string{"tickets:read"}, wire.Constraints{Resources: []string{exResource}}, time.Hour)
		requireError(t, env.post(t, mintForm(stranger, se, "tickets:read")), 403, "access_denied", "policy denied (role_scope_mismatch)")
	})
	t.Run("minting from the root", func(t *testing.T) {
		f := baseForm("scope", "tickets:read", "resource", exResource, "agent_session_id", root.id)
		requireError(t, env.post(t, f), 403, "access_denied", "policy denied (no_rule_matched)")
	})
	t.Run("scope outside the edge", func(t *testing.T) {
		requireError(t, env.post(t, mintForm(child, e, "tickets:write")), 403, "access_denied", "requested scopes exceed delegation scopes")
	})
}

func TestMintRules(t *testing.T) {
	env := newSTSEnv(t, func(c *worldConfig) {
		c.Resources = append(c.Resources, Resource{Identifier: "resource://foreign", Scopes: []string{"tickets:read"}})
		c.Policy.Grants["resource://foreign"] = ResourceGrant{Application: "app-other",
			Roles: map[string][]string{"reader": {"tickets:read"}}}
	})
	readOnly := []string{"tickets:read"}
	scoped := wire.Constraints{Resources: []string{exResource}}
	type mint struct {
		form   url.Values
		status int
		desc   string
	}
	cases := map[string]func() mint{
		"edge unknown": func() mint {
			_, child, _ := env.chain()
			return mint{baseForm("scope", "tickets:read", "resource", exResource, "agent_session_id", child.id, "delegation_edge_id", "nope"),
				403, "delegation edge inactive or expired"}
		},
		"edge expired": func() mint {
			root, child := env.session(exApp), env.session(exApp, "reader")
			e := env.edge(root, child, nil, readOnly, scoped, time.Minute)
			env.w.mu.Lock()
			e.expiresAt = env.clock.Now()
			env.w.mu.Unlock()
			return mint{mintForm(child, e, "tickets:read"), 403, "delegation edge inactive or expired"}
		},
		"edge revoked": func() mint {
			_, child, e := env.chain()
			env.w.mu.Lock()
			env.w.revokeEdge(e)
			env.w.mu.Unlock()
			return mint{mintForm(child, e, "tickets:read"), 403, "delegation edge inactive or expired"}
		},
		"edge of another session": func() mint {
			_, _, e := env.chain()
			other := env.session(exApp, "reader")
			return mint{mintForm(other, e, "tickets:read"), 403, "delegation edge target mismatch"}
		},
		"source ended": func() mint {
			root, child, e := env.chain()
			env.w.mu.Lock()
			root.status = wire.StatusTerminated
			env.w.mu.Unlock()
			return mint{mintForm(child, e, "tickets:read"), 403, "delegation source inactive or expired"}
		},
		"source task past its ttl": func() mint {
			root, child, e := env.chain()
			env.w.mu.Lock()
			root.ttl = time.Second
			root.startedAt = env.clock.Now().Add(-time.Second)
			env.w.mu.Unlock()
			return mint{mintForm(child, e, "tickets:read"), 403, "delegation source inactive or expired"}
		},
		"target suspended": func() mint {
			_, child, e := env.chain()
			require.NoError(t, env.w.suspend(child.id))
			return mint{mintForm(child, e, "tickets:read"), 403, "delegation target inactive or unauthorized"}
		},
		"target service lease lapsed": func() mint {
			root, child := env.session(exApp), env.session(exApp, "reader")
			env.w.mu.Lock()
			child.lifecycle, child.ttl, child.deadline = wire.LifecycleService, 0, env.clock.Now()
			env.w.mu.Unlock()
			e := env.edge(root, child, nil, readOnly, scoped, time.Hour)
			return mint{mintForm(child, e, "tickets:read"), 403, "delegation target inactive or unauthorized"}
		},
		"target owned by another application": func() mint {
			root, child := env.session(exApp), env.session("app-other", "reader")
			e := env.edge(root, child, nil, readOnly, scoped, time.Hour)
			return mint{mintForm(child, e, "tickets:read"), 403, "delegation target inactive or unauthorized"}
		},
		"issuer mismatch": func() mint {
			root, child := env.session(exApp), env.session(exApp, "reader")
			e := env.edge(root, child, nil, readOnly, scoped, time.Hour)
			env.w.mu.Lock()
			e.issuer = "app-other"
			env.w.mu.Unlock()
			return mint{mintForm(child, e, "tickets:read"), 403, "delegation application mismatch"}
		},
		"budget constraint": func() mint {
			root, child := env.session(exApp), env.session(exApp, "reader")
			e := env.edge(root, child, nil, readOnly, wire.Constraints{Resources: []string{exResource}, Budget: 2}, time.Hour)
			return mint{mintForm(child, e, "tickets:read"), 403, "delegation constraints invalid"}
		},
		"ttl over the constraint": func() mint {
			_, child, e := env.chain()
			f := mintForm(child, e, "tickets:read")
			f.Set("ttl_seconds", "601")
			return mint{f, 403, "requested ttl exceeds delegation ttl"}
		},
		"hop limit over the platform maximum": func() mint {
			root, child := env.session(exApp), env.session(exApp, "reader")
			e := env.edge(root, child, nil, readOnly, wire.Constraints{Resources: []string{exResource}, MaxHops: 11}, time.Hour)
			return mint{mintForm(child, e, "tickets:read"), 403, "delegation hop limit exceeds platform maximum"}
		},
		"depth 2 with the default max_hops": func() mint {
			root, mid, grand := env.session(exApp), env.session(exApp, "reader"), env.session(exApp, "reader")
			pe := env.edge(root, mid, nil, readOnly, scoped, time.Hour)
			ce := env.edge(mid, grand, pe, readOnly, scoped, time.Hour)
			return mint{mintForm(grand, ce, "tickets:read"), 403, "delegation path invalid"}
		},
		"parent edge revoked": func() mint {
			root, mid, grand := env.session(exApp), env.session(exApp, "reader"), env.session(exApp, "reader")
			pe := env.edge(root, mid, nil, readOnly, wire.Constraints{Resources: []string{exResource}, MaxHops: 3}, time.Hour)
			ce := env.edge(mid, grand, pe, readOnly, wire.Constraints{Resources: []string{exResource}, MaxHops: 2}, time.Hour)
			env.w.mu.Lock()
			pe.status = wire.StatusRevoked
			env.w.mu.Unlock()
			return mint{mintForm(grand, ce, "tickets:read"), 403, "delegation path invalid"}
		},
		"chain discontinuous": func() mint {
			root, mid, grand := env.session(exApp), env.session(exApp, "reader"), env.session(exApp, "reader")
			other := env.session(exApp)
			pe := env.edge(root, other, nil, readOnly, wire.Constraints{Resources: []string{exResource}, MaxHops: 3}, time.Hour)
			ce := env.edge(mid, grand, pe, readOnly, wire.Constraints{Resources: []string{exResource}, MaxHops: 2}, time.Hour)
			return mint{mintForm(grand, ce, "tickets:read"), 403, "delegation chain discontinuous"}
		},
		"resource outside constraints.resources": func() mint {
			root, child := env.session(exApp), env.session(exApp, "reader")
			e := env.edge(root, child, nil, readOnly, wire.Constraints{Resources: []string{"resource://plain"}}, time.Hour)
			return mint{mintForm(child, e, "tickets:read"), 403, "policy denied"}
		},
		"resource outside resource_id": func() mint {
			root, child := env.session(exApp), env.session(exApp, "reader")
			e := env.edge(root, child, nil, readOnly, wire.Constraints{}, time.Hour)
			env.w.mu.Lock()
			e.resourceID = "res-plain"
			env.w.mu.Unlock()
			return mint{mintForm(child, e, "tickets:read"), 403, "policy denied"}
		},
		"scope not declared on the resource": func() mint {
			root, child := env.session(exApp), env.session(exApp, "reader")
			e := env.edge(root, child, nil, []string{"tickets:read", "plain:read"}, wire.Constraints{}, time.Hour)
			return mint{mintForm(child, e, "plain:read"), 403, "policy denied"}
		},
		"lifecycle scope": func() mint {
			root, child := env.session(exApp), env.session(exApp, "reader")
			e := env.edge(root, child, nil, []string{"tickets:read", "agent:lifecycle"}, scoped, time.Hour)
			return mint{mintForm(child, e, "agent:lifecycle"), 403, "policy denied (no_rule_matched)"}
		},
		"no scope": func() mint {
			_, child, e := env.chain()
			f := mintForm(child, e, "")
			return mint{f, 403, "policy denied (no_rule_matched)"}
		},
		"resource of another owner": func() mint {
			root, child := env.session(exApp), env.session(exApp, "reader")
			e := env.edge(root, child, nil, readOnly, wire.Constraints{}, time.Hour)
			f := mintForm(child, e, "tickets:read")
			f.Set("resource", "resource://foreign")
			return mint{f, 403, "policy denied (resource_not_granted)"}
		},
		"role covers only some scopes": func() mint {
			_, child, e := env.chain("reader")
			return mint{mintForm(child, e, "tickets:read tickets:delete"), 403, "policy denied (role_scope_mismatch)"}
		},
		"constraint expiry passed": func() mint {
			root, child := env.session(exApp), env.session(exApp, "reader")
			e := env.edge(root, child, nil, readOnly, wire.Constraints{Resources: []string{exResource},
				ExpiresAt: wire.CoordinatorTime(env.clock.Now())}, time.Hour)
			return mint{mintForm(child, e, "tickets:read"), 403, "delegation constraint expired"}
		},
		"constraint expiry unreadable": func() mint {
			root, child := env.session(exApp), env.session(exApp, "reader")
			e := env.edge(root, child, nil, readOnly, wire.Constraints{Resources: []string{exResource}, ExpiresAt: "soon"}, time.Hour)
			return mint{mintForm(child, e, "tickets:read"), 403, "delegation constraint expiry invalid"}
		},
		"edge with under a second left": func() mint {
			root, child := env.session(exApp), env.session(exApp, "reader")
			e := env.edge(root, child, nil, readOnly, scoped, 500*time.Millisecond)
			return mint{mintForm(child, e, "tickets:read"), 403, "effective delegation ttl expired"}
		},
		"ttl negative": func() mint {
			_, child, e := env.chain()
			f := mintForm(child, e, "tickets:read")
			f.Set("ttl_seconds", "-5")
			return mint{f, 400, "ttl_seconds must be positive"}
		},
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			m := setup()
			code := "access_denied"
			if m.status == 400 {
				code = "invalid_token"
			}
			requireError(t, env.post(t, m.form), m.status, code, m.desc)
		})
	}
}

func TestMintLifetimeAndLineage(t *testing.T) {
	env := newSTSEnv(t)
	readOnly := []string{"tickets:read"}
	t.Run("clamped to the constraint ttl", func(t *testing.T) {
		root, child := env.session(exApp), env.session(exApp, "reader")
		e := env.edge(root, child, nil, readOnly, wire.Constraints{Resources: []string{exResource}, TTLSeconds: 120}, time.Hour)
		assert.Equal(t, 120, env.token(t, mintForm(child, e, "tickets:read")).ExpiresIn)
	})
	t.Run("clamped to the constraint expiry", func(t *testing.T) {
		root, child := env.session(exApp), env.session(exApp, "reader")
		e := env.edge(root, child, nil, readOnly, wire.Constraints{Resources: []string{exResource},
			ExpiresAt: wire.CoordinatorTime(env.clock.Now().Add(300 * time.Second))}, time.Hour)
		assert.Equal(t, 300, env.token(t, mintForm(child, e, "tickets:read")).ExpiresIn)
	})
	t.Run("requested ttl", func(t *testing.T) {
		_, child, e := env.chain()
		f := mintForm(child, e, "tickets:read")
		f.Set("ttl_seconds", "60")
		tr := env.token(t, f)
		assert.Equal(t, 60, tr.ExpiresIn)
		assert.Equal(t, float64(env.clock.Now().Unix()+60), claims(t, tr.AccessToken)["exp"])
	})
	t.Run("resource_id scoping by DB id", func(t *testing.T) {
		root, child := env.session(exApp), env.session(exApp, "reader")
		e := env.edge(root, child, nil, readOnly, wire.Constraints{}, time.Hour)
		env.w.mu.Lock()
		e.resourceID = exResID
		env.w.mu.Unlock()
		f := mintForm(child, e, "tickets:read")
		f.Set("resource", exResID)
		assert.Equal(t, []string{exResource}, env.token(t, f).TargetResources)
	})
	t.Run("depth 2 with enough hops", func(t *testing.T) {
		root, mid, grand := env.session(exApp), env.session(exApp, "reader"), env.session(exApp, "reader")
		pe := env.edge(root, mid, nil, readOnly, wire.Constraints{Resources: []string{exResource}, MaxHops: 3}, time.Hour)
		ce := env.edge(mid, grand, pe, readOnly, wire.Constraints{Resources: []string{exResource}, MaxHops: 2}, time.Hour)
		c := claims(t, env.token(t, mintForm(grand, ce, "tickets:read")).AccessToken)
		assert.Equal(t, 2.0, c["hop_count"])
		assert.Equal(t, []any{pe.id, ce.id}, c["delegation_path"])
		assert.Equal(t, mid.id, c["source_session_id"])
		assert.Equal(t, []any{
			map[string]any{"application_id": exApp, "agent_session_id": root.id, "delegation_edge_id": pe.id},
			map[string]any{"application_id": exApp, "agent_session_id": mid.id, "delegation_edge_id": ce.id},
			map[string]any{"application_id": exApp, "agent_session_id": grand.id},
		}, c["delegation_chain"])
	})
	t.Run("every exchange writes an authority record", func(t *testing.T) {
		_, child, e := env.chain()
		c := claims(t, env.token(t, mintForm(child, e, "tickets:read")).AccessToken)
		env.w.mu.Lock()
		rec := env.w.records[c["sid"].(string)]
		env.w.mu.Unlock()
		require.NotNil(t, rec)
		assert.Equal(t, exApp, rec.subjectID)
		assert.Equal(t, "application", rec.sessionType)
		assert.Equal(t, int64(c["exp"].(float64)), rec.expiresAt.Unix())
	})
}

func TestMintRateLimit(t *testing.T) {
	env := newSTSEnv(t, func(c *worldConfig) { c.Limits.MintPerMinute = 2 })
	_, child, e := env.chain()
	env.token(t, mintForm(child, e, "tickets:read"))
	env.token(t, mintForm(child, e, "tickets:read"))
	requireError(t, env.post(t, mintForm(child, e, "tickets:read")), 403, "access_denied", "policy denied")
	// The lifecycle token shares the (resource, application) budget.
	requireError(t, env.post(t, lifecycleForm()), 403, "access_denied", "policy denied")
	env.clock.Advance(time.Minute)
	env.token(t, mintForm(child, e, "tickets:read"))
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

// writerChain is example C's shape: a writer child holding an edge for
// tickets:write.
func (env *stsEnv) writerChain() (*session, *edge) {
	root, child := env.session(exApp, "dispatcher"), env.session(exApp, "writer")
	e := env.edge(root, child, nil, []string{"tickets:read", "tickets:write"},
		wire.Constraints{Resources: []string{exResource}}, 8*time.Hour)
	return child, e
}

func (env *stsEnv) approvalStatus(t *testing.T, id, query string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(env.sts.URL + "/approvals/" + id + query)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(readBody(t, resp)), &m))
	return resp.StatusCode, m
}

func requireHold(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	assert.Equal(t, `Bearer error="interaction_required"`, resp.Header.Get("WWW-Authenticate"))
	m := requireError(t, resp, 401, "interaction_required", "Human approval required for this request")
	assert.Equal(t, "human_approval", m["approval_type"])
	assert.Equal(t, "pending", m["state"])
	assert.Regexp(t, `^[0-9a-f]{64}$`, m["binding"])
	id, err := uuid.Parse(m["approval_id"].(string))
	require.NoError(t, err)
	assert.Equal(t, uuid.Version(4), id.Version())
	return m
}

// TestExampleC reproduces PROTOCOL §10 C: hold, wait, approve, retry,
// re-issue, consumed.
func TestExampleC(t *testing.T) {
	env := newSTSEnv(t)
	child, e := env.writerChain()
	env.clock.Advance(5 * time.Second)

	// C1
	hold := requireHold(t, env.post(t, mintForm(child, e, "tickets:write")))
	id := hold["approval_id"].(string)
	assert.Equal(t, "high", hold["tier"])
	assert.Equal(t, "2026-08-22T14:00:05Z", hold["approval_expires_at"], "operator class: 4 h")
	assert.Len(t, hold, 9)
	// Repeating the same mint returns the same hold.
	again := requireHold(t, env.post(t, mintForm(child, e, "tickets:write")))
	assert.Equal(t, id, again["approval_id"])
	assert.Equal(t, hold["binding"], again["binding"])
	// A retry naming the pending hold is held again.
	f := mintForm(child, e, "tickets:write")
	f.Set("approval_id", id)
	assert.Equal(t, id, requireHold(t, env.post(t, f))["approval_id"])

	// C2
	status, body := env.approvalStatus(t, id, "?wait=0")
	assert.Equal(t, 200, status)
	assert.Equal(t, map[string]any{"id": id, "state": "pending", "expires_at": "2026-08-22T14:00:05Z"}, body)
	require.NoError(t, env.w.decideApproval(id, true))
	_, body = env.approvalStatus(t, id, "?wait=25")
	assert.Equal(t, "approved", body["state"])
	assert.Error(t, env.w.decideApproval(id, false), "decided holds are final")

	// C3
	first := env.token(t, f)
	fc := claims(t, first.AccessToken)
	assert.Equal(t, "tickets:write", fc["scope"])
	assert.Equal(t, "gateway", fc["use"])
	_, body = env.approvalStatus(t, id, "")
	assert.Equal(t, "consumed", body["state"])
	// A second identical retry within 2 minutes: re-issued for the same
	// authority record.
	env.clock.Advance(119 * time.Second)
	second := env.token(t, f)
	sc := claims(t, second.AccessToken)
	assert.Equal(t, fc["sid"], sc["sid"])
	assert.NotEqual(t, fc["jti"], sc["jti"])
	assert.Equal(t, fc["exp"], sc["exp"])
	assert.Equal(t, first.ExpiresIn-119, second.ExpiresIn)
	// Later: consumed.
	env.clock.Advance(2 * time.Second)
	requireError(t, env.post(t, f), 409, "approval_consumed", "approval already used; another request consumed it")
	// From another session or edge: the bindings do not match.
	other, oe := env.writerChain()
	g := mintForm(other, oe, "tickets:write")
	g.Set("approval_id", id)
	requireError(t, env.post(t, g), 401, "access_denied", "approval not found or bindings do not match")

	list := env.w.approvalList()
	require.Len(t, list, 1)
	assert.Equal(t, ApprovalInfo{ID: id, State: "consumed", Tier: "high", Approver: "operator", Binding: hold["binding"].(string),
		ExpiresAt: exStart.Add(5*time.Second + 4*time.Hour), Scopes: []string{"tickets:write"}, Resource: exResource,
		SessionID: child.id}, list[0])
}

func TestApprovalOutcomes(t *testing.T) {
	env := newSTSEnv(t)
	holdFor := func(t *testing.T, child *session, e *edge) (string, url.Values) {
		m := requireHold(t, env.post(t, mintForm(child, e, "tickets:write")))
		f := mintForm(child, e, "tickets:write")
		f.Set("approval_id", m["approval_id"].(string))
		return m["approval_id"].(string), f
	}
	t.Run("rejected", func(t *testing.T) {
		child, e := env.writerChain()
		id, f := holdFor(t, child, e)
		require.NoError(t, env.w.decideApproval(id, false))
		requireError(t, env.post(t, f), 403, "access_denied", "approval was rejected")
		_, body := env.approvalStatus(t, id, "")
		assert.Equal(t, "rejected", body["state"])
		// A fresh mint raises a new hold.
		next := requireHold(t, env.post(t, mintForm(child, e, "tickets:write")))
		assert.NotEqual(t, id, next["approval_id"])
	})
	t.Run("expired", func(t *testing.T) {
		child, e := env.writerChain()
		id, f := holdFor(t, child, e)
		env.clock.Advance(4 * time.Hour)
		requireError(t, env.post(t, f), 401, "access_denied", "approval expired")
		_, body := env.approvalStatus(t, id, "?wait=5")
		assert.Equal(t, "expired", body["state"])
		assert.Error(t, env.w.decideApproval(id, true))
	})
	t.Run("retry without approval_id consumes the approved hold", func(t *testing.T) {
		child, e := env.writerChain()
		id, _ := holdFor(t, child, e)
		require.NoError(t, env.w.decideApproval(id, true))
		env.token(t, mintForm(child, e, "tickets:write"))
		_, body := env.approvalStatus(t, id, "")
		assert.Equal(t, "consumed", body["state"])
		// The next mint is held again.
		assert.NotEqual(t, id, requireHold(t, env.post(t, mintForm(child, e, "tickets:write")))["approval_id"])
	})
	t.Run("approved hold left unconsumed by a later denial", func(t *testing.T) {
		child, e := env.writerChain()
		id, f := holdFor(t, child, e)
		require.NoError(t, env.w.decideApproval(id, true))
		require.NoError(t, env.w.suspend(child.id))
		requireError(t, env.post(t, f), 403, "access_denied", "delegation target inactive or unauthorized")
		require.NoError(t, env.w.resume(child.id))
		env.token(t, f)
	})
	t.Run("unknown approval id", func(t *testing.T) {
		child, e := env.writerChain()
		f := mintForm(child, e, "tickets:write")
		f.Set("approval_id", uuid.NewString())
		requireError(t, env.post(t, f), 401, "access_denied", "approval not found or bindings do not match")
	})
	t.Run("ungated scopes and lifecycle tokens are never held", func(t *testing.T) {
		child, e := env.writerChain()
		env.token(t, mintForm(child, e, "tickets:read"))
		env.token(t, lifecycleForm())
	})
	t.Run("decide unknown", func(t *testing.T) {
		assert.Error(t, env.w.decideApproval(uuid.NewString(), true))
	})
}

func TestApprovalTiers(t *testing.T) {
	cases := []struct {
		name  string
		risk  []Risk
		tiers []ApprovalTier
		ttl   time.Duration
		tier  string
		deny  string
	}{
		{name: "subject default", risk: []Risk{{"tickets:write", "high"}},
			tiers: []ApprovalTier{{Tier: "high", Approver: "subject"}}, ttl: 15 * time.Minute, tier: "high"},
		{name: "declared ttl clamped up to 60 s", risk: []Risk{{"tickets:write", "high"}},
			tiers: []ApprovalTier{{Tier: "high", Approver: "any", TTL: 10 * time.Second}}, ttl: time.Minute, tier: "high"},
		{name: "declared ttl clamped to the class max", risk: []Risk{{"tickets:write", "high"}},
			tiers: []ApprovalTier{{Tier: "high", Approver: "subject", TTL: 48 * time.Hour}}, ttl: 24 * time.Hour, tier: "high"},
		{name: "tiers merged, smallest ttl", risk: []Risk{{"tickets:write", "high"}, {"tickets:read", "audit"}},
			tiers: []ApprovalTier{{Tier: "high", Approver: "operator", TTL: time.Hour}, {Tier: "audit", Approver: "any", TTL: 30 * time.Minute}},
			ttl:   30 * time.Minute, tier: "audit,high"},
		{name: "operator and subject", risk: []Risk{{"tickets:write", "high"}, {"tickets:read", "pii"}},
			tiers: []ApprovalTier{{Tier: "high", Approver: "operator"}, {Tier: "pii", Approver: "subject"}},
			deny:  "approval requires separate operator and subject decisions"},
		{name: "malformed approval data", risk: []Risk{{"tickets:write", "high"}},
			tiers: []ApprovalTier{{Tier: "high", Approver: "boss"}}, deny: "policy denied (malformed_approval_data)"},
		{name: "malformed risk data", risk: []Risk{{"tickets:write", ""}}, deny: "policy denied (malformed_risk_data)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newSTSEnv(t, func(c *worldConfig) { c.Policy.Risk, c.Policy.ApprovalTiers = tc.risk, tc.tiers })
			child, e := env.writerChain()
			resp := env.post(t, mintForm(child, e, "tickets:read tickets:write"))
			if tc.deny != "" {
				requireError(t, resp, 403, "access_denied", tc.deny)
				return
			}
			m := requireHold(t, resp)
			assert.Equal(t, tc.tier, m["tier"])
			assert.Equal(t, wire.STSTime(exStart.Add(tc.ttl)), m["approval_expires_at"])
		})
	}
}

func TestApprovalStatusErrors(t *testing.T) {
	env := newSTSEnv(t)
	child, e := env.writerChain()
	id := requireHold(t, env.post(t, mintForm(child, e, "tickets:write")))["approval_id"].(string)
	cases := []struct {
		name, id, query string
		status          int
		body            map[string]any
	}{
		{"negative wait", id, "?wait=-1", 400, map[string]any{"error": "invalid_token", "error_description": "invalid wait"}},
		{"text wait", id, "?wait=soon", 400, map[string]any{"error": "invalid_token", "error_description": "invalid wait"}},
		{"empty wait", id, "?wait=", 400, map[string]any{"error": "invalid_token", "error_description": "invalid wait"}},
		{"unknown uuid", uuid.NewString(), "", 404, map[string]any{"error": "resource_not_found", "error_description": "approval not found"}},
		{"not a uuid", "hold-1", "", 404, map[string]any{"error": "resource_not_found", "error_description": "approval not found"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := env.approvalStatus(t, tc.id, tc.query)
			assert.Equal(t, tc.status, status)
			assert.Equal(t, tc.body, body)
		})
	}
}

// TestApprovalLongPoll runs the long poll on the bubble's fake clock.
func TestApprovalLongPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := exampleConfig()
		cfg.Resources[0].Upstream = http.NotFoundHandler()
		w, err := newWorld(cfg)
		require.NoError(t, err)
		env := &stsEnv{w: w, clock: NewFakeClock(time.Now())}
		root, child := env.session(exApp), env.session(exApp, "writer")
		e := env.edge(root, child, nil, []string{"tickets:write"}, wire.Constraints{Resources: []string{exResource}}, time.Hour)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/oauth/2/token", strings.NewReader(mintForm(child, e, "tickets:write").Encode()))
		req.Header.Set("Content-Type", formType)
		w.handleToken(rec, req)
		require.Equal(t, 401, rec.Code, rec.Body.String())
		var hold map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &hold))
		id := hold["approval_id"].(string)

		poll := func(ctx context.Context, query string) (*httptest.ResponseRecorder, time.Duration) {
			start := time.Now()
			req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/approvals/"+id+query, nil)
			req.SetPathValue("id", id)
			rec := httptest.NewRecorder()
			w.handleApproval(rec, req)
			return rec, time.Since(start)
		}
		state := func(rec *httptest.ResponseRecorder) string {
			var st wire.ApprovalStatus
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
			return st.State
		}

		rec, took := poll(t.Context(), "?wait=10")
		assert.Equal(t, "pending", state(rec))
		assert.Equal(t, 10*time.Second, took)

		rec, took = poll(t.Context(), "?wait=18446744073709551615")
		assert.Equal(t, "pending", state(rec))
		assert.Equal(t, 25*time.Second, took, "clamped to 25 s")

		rec, took = poll(t.Context(), "")
		assert.Equal(t, "pending", state(rec))
		assert.Zero(t, took)

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan time.Duration)
		go func() {
			_, took := poll(ctx, "?wait=25")
			done <- took
		}()
		synctest.Wait()
		cancel()
		assert.Zero(t, <-done, "a cancelled poll returns at once")

		var decided *httptest.ResponseRecorder
		go func() {
			var took time.Duration
			decided, took = poll(t.Context(), "?wait=25")
			done <- took
		}()
		synctest.Wait()
		time.Sleep(3 * time.Second) // fake time: the poll is parked
		require.NoError(t, w.decideApproval(id, true))
		assert.Equal(t, 3*time.Second, <-done, "the decision wakes the poll")
		assert.Equal(t, "approved", state(decided))
	})
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

// TestApprovalLongPollWakesOnFakeClockExpiry: on a FakeClock the hold's
// expiry comes from Advance, not from the passing of real time; a parked
// poll must answer "expired" then, not at the end of its wait.
func TestApprovalLongPollWakesOnFakeClockExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := NewFakeClock(exStart)
		cfg := exampleConfig()
		cfg.Clock = fc
		cfg.Resources[0].Upstream = http.NotFoundHandler()
		w, err := newWorld(cfg)
		require.NoError(t, err)
		defer fc.addSweeper(w.sweep)() // as a Stack on fc does
		env := &stsEnv{w: w, clock: fc}
		root, child := env.session(exApp), env.session(exApp, "writer")
		e := env.edge(root, child, nil, []string{"tickets:write"}, wire.Constraints{Resources: []string{exResource}}, 24*time.Hour)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/oauth/2/token", strings.NewReader(mintForm(child, e, "tickets:write").Encode()))
		req.Header.Set("Content-Type", formType)
		w.handleToken(rec, req)
		require.Equal(t, 401, rec.Code, rec.Body.String())
		var hold map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &hold))
		id := hold["approval_id"].(string)

		type result struct {
			took  time.Duration
			state string
		}
		done := make(chan result)
		go func() {
			start := time.Now()
			req := httptest.NewRequest(http.MethodGet, "/approvals/"+id+"?wait=25", nil)
			req.SetPathValue("id", id)
			rec := httptest.NewRecorder()
			w.handleApproval(rec, req)
			var st wire.ApprovalStatus
			assert.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
			done <- result{time.Since(start), st.State}
		}()
		synctest.Wait() // the poll is parked
		fc.Advance(5 * time.Hour)
		got := <-done
		assert.Equal(t, "expired", got.state)
		assert.Zero(t, got.took, "Advance past the hold's expiry wakes the poll")
	})
}
