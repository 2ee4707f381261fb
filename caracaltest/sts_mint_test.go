package caracaltest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/wire"
)

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
		c.Policy.Grants["resource://foreign"] = resourceGrant{Application: "app-other",
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
	t.Run("requested ttl past the nanosecond range", func(t *testing.T) {
		root, child := env.session(exApp), env.session(exApp, "reader")
		e := env.edge(root, child, nil, readOnly, wire.Constraints{Resources: []string{exResource}}, time.Hour)
		f := mintForm(child, e, "tickets:read")
		f.Set("ttl_seconds", "18446744074")
		requireError(t, env.post(t, f), 400, "invalid_token", "ttl_seconds exceeds token TTL cap")
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
