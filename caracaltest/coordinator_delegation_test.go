package caracaltest

import (
	"fmt"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const delegationsPath = "/zones/zone-acme/delegations"

// delegationWorld is a root R with children A and B (all tasks, 2 h TTL).
type delegationWorld struct {
	*coordEnv
	root, a, b string
}

func newDelegationWorld(t *testing.T) delegationWorld {
	e := newCoordEnv(t)
	long := map[string]any{"ttl_seconds": 7200}
	root := e.task("", long)
	return delegationWorld{coordEnv: e, root: root, a: e.task(root, long), b: e.task(root, long)}
}

func (d delegationWorld) body(extra map[string]any) map[string]any {
	f := map[string]any{
		"source_session_id": d.root, "target_session_id": d.a,
		"issuer_application_id": "app-reporter", "receiver_application_id": "app-reporter",
		"scopes": []string{"tickets:read"}, "resource_id": "resource://tickets", "ttl_seconds": 600,
	}
	for k, v := range extra {
		if v == nil {
			delete(f, k)
		} else {
			f[k] = v
		}
	}
	return f
}

func TestCreateDelegationRows(t *testing.T) {
	type dw = delegationWorld
	for _, tc := range []struct {
		name   string
		setup  func(d dw) (map[string]any, *string)
		status int
		code   string
	}{
		// row 1
		{"schema: source missing", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"source_session_id": nil}), nil
		}, 400, "invalid_body"},
		{"schema: empty scope", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"scopes": []string{""}}), nil
		}, 400, "invalid_body"},
		{"schema: ttl too big", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"ttl_seconds": 86401}), nil
		}, 400, "invalid_body"},
		{"schema: expires_at with offset", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"ttl_seconds": nil, "expires_at": "2026-08-22T12:00:00+02:00"}), nil
		}, 400, "invalid_body"},
		{"schema: empty parent_edge_id", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"parent_edge_id": ""}), nil
		}, 400, "invalid_body"},
		// row 2
		{"constraints not an object", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"constraints": []int{1}}), nil
		}, 400, "invalid_delegation_constraint"},
		{"constraints_json not an object", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"constraints_json": "x"}), nil
		}, 400, "invalid_delegation_constraint"},
		{"unknown constraint key", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"constraints": map[string]any{"uses": 3}}), nil
		}, 400, "invalid_delegation_constraint"},
		// row 3
		{"invalid resources", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"constraints": map[string]any{"resources": []string{""}}}), nil
		}, 400, "invalid_resources"},
		{"too many resources", func(d dw) (map[string]any, *string) {
			many := make([]string, 65)
			for i := range many {
				many[i] = fmt.Sprintf("resource://r%d", i)
			}
			return d.body(map[string]any{"constraints": map[string]any{"resources": many}}), nil
		}, 400, "invalid_resources"},
		{"max_hops 11", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"constraints": map[string]any{"max_hops": 11}}), nil
		}, 400, "invalid_max_hops"},
		{"max_depth 0", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"constraints": map[string]any{"max_depth": 0}}), nil
		}, 400, "invalid_max_depth"},
		{"budget 65", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"constraints": map[string]any{"budget": 65}}), nil
		}, 400, "invalid_budget"},
		{"constraint ttl", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"constraints_json": map[string]any{"ttl_seconds": 1.5}}), nil
		}, 400, "invalid_ttl_seconds"},
		{"policy_approved", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"constraints": map[string]any{"policy_approved": "yes"}}), nil
		}, 400, "invalid_policy_approved"},
		{"constraint expires_at", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"constraints": map[string]any{"expires_at": "tomorrow"}}), nil
		}, 400, "invalid_expires_at"},
		{"broad_reason", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"constraints": map[string]any{"broad_reason": ""}}), nil
		}, 400, "invalid_broad_reason"},
		// row 4
		{"max_depth and max_hops differ", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"constraints": map[string]any{"max_hops": 2, "max_depth": 3}}), nil
		}, 400, "invalid_max_hops"},
		// row 5
		{"no expiry", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"ttl_seconds": nil}), nil
		}, 400, "delegation_expiry_required"},
		// row 6
		{"issuer ownership", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"issuer_application_id": "app-other"}), nil
		}, 403, "issuer_ownership_required"},
		// row 7
		{"self delegation", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"target_session_id": d.root}), nil
		}, 400, "self_delegation_denied"},
		// row 8
		{"broad", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"resource_id": nil}), nil
		}, 403, "broad_delegation_permission_required"},
		{"broad with null resource", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"resource_id": jsonNullValue{}}), nil
		}, 403, "broad_delegation_permission_required"},
		// row 10
		{"source unknown", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"source_session_id": "nope"}), nil
		}, 404, "delegation_endpoint_not_found"},
		{"target suspended", func(d dw) (map[string]any, *string) {
			svc := d.service("")
			require.NoError(d.t, d.w.suspend(svc))
			return d.body(map[string]any{"target_session_id": svc}), nil
		}, 404, "delegation_endpoint_not_found"},
		{"source ttl elapsed", func(d dw) (map[string]any, *string) {
			short := d.task("", map[string]any{"ttl_seconds": 5})
			d.clock.Advance(6 * time.Second)
			return d.body(map[string]any{"source_session_id": short}), nil
		}, 404, "delegation_endpoint_not_found"},
		{"service lease elapsed", func(d dw) (map[string]any, *string) {
			svc := d.service("")
			d.clock.Advance(121 * time.Second)
			return d.body(map[string]any{"source_session_id": svc}), nil
		}, 404, "delegation_endpoint_not_found"},
		// row 11
		{"receiver mismatch", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"receiver_application_id": "app-other"}), nil
		}, 409, "delegation_application_mismatch"},
		// row 12
		{"resource unknown", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"resource_id": "resource://nope"}), nil
		}, 404, "resource_not_found"},
		{"constraint resource unknown", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"resource_id": nil, "constraints": map[string]any{"resources": []string{"resource://tickets", "resource://nope"}}}), nil
		}, 404, "resource_not_found"},
		{"constraint resources are identifiers only", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"resource_id": nil, "constraints": map[string]any{"resources": []string{"res-tickets"}}}), nil
		}, 404, "resource_not_found"},
		// row 13
		{"resource outside the listed ones", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"constraints": map[string]any{"resources": []string{"resource://docs"}}}), nil
		}, 400, "delegation_resource_scope_mismatch"},
		// row 14
		{"scope not declared", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"scopes": []string{"tickets:delete"}}), nil
		}, 403, "delegation_scopes_exceed_resource"},
		{"lifecycle scope not added", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"scopes": []string{"agent:lifecycle"}}), nil
		}, 403, "delegation_scopes_exceed_resource"},
		// row 15
		{"parent edge not inbound", func(d dw) (map[string]any, *string) {
			d.edge(d.root, d.a, map[string]any{"constraints": map[string]any{"max_hops": 3}})
			return d.body(map[string]any{"source_session_id": d.a, "target_session_id": d.b, "parent_edge_id": "edge-x"}), nil
		}, 403, "parent_delegation_not_active"},
		// row 16
		{"two inbound edges", func(d dw) (map[string]any, *string) {
			d.edge(d.root, d.a, nil)
			d.edge(d.b, d.a, nil)
			return d.body(map[string]any{"source_session_id": d.a, "target_session_id": d.task(d.a)}), nil
		}, 409, "parent_delegation_ambiguous"},
		// row 17
		{"narrowing: scopes wider", func(d dw) (map[string]any, *string) {
			d.edge(d.root, d.a, map[string]any{"constraints": map[string]any{"max_hops": 3}})
			return d.body(map[string]any{"source_session_id": d.a, "target_session_id": d.b, "scopes": []string{"tickets:write"}}), nil
		}, 403, "delegation_exceeds_parent_authority"},
		{"narrowing: other resource", func(d dw) (map[string]any, *string) {
			d.edge(d.root, d.a, map[string]any{"constraints": map[string]any{"max_hops": 3}})
			return d.body(map[string]any{"source_session_id": d.a, "target_session_id": d.b, "resource_id": "res-docs", "scopes": []string{"docs:read"}}), nil
		}, 403, "delegation_exceeds_parent_authority"},
		{"narrowing: outside the parent's resource list", func(d dw) (map[string]any, *string) {
			d.edge(d.root, d.a, map[string]any{"resource_id": nil, "constraints": map[string]any{"max_hops": 3, "resources": []string{"resource://tickets"}}})
			return d.body(map[string]any{"source_session_id": d.a, "target_session_id": d.b, "resource_id": nil,
				"scopes": []string{"docs:read"}, "constraints": map[string]any{"resources": []string{"resource://docs"}}}), nil
		}, 403, "delegation_exceeds_parent_authority"},
		{"narrowing: parent max_hops 1", func(d dw) (map[string]any, *string) {
			d.edge(d.root, d.a, nil)
			return d.body(map[string]any{"source_session_id": d.a, "target_session_id": d.b}), nil
		}, 403, "delegation_exceeds_parent_authority"},
		{"narrowing: child hops not below parent", func(d dw) (map[string]any, *string) {
			d.edge(d.root, d.a, map[string]any{"constraints": map[string]any{"max_hops": 2}})
			return d.body(map[string]any{"source_session_id": d.a, "target_session_id": d.b, "constraints": map[string]any{"max_hops": 2}}), nil
		}, 403, "delegation_exceeds_parent_authority"},
		{"narrowing: ttl above parent's", func(d dw) (map[string]any, *string) {
			d.edge(d.root, d.a, map[string]any{"constraints": map[string]any{"max_hops": 3}, "ttl_seconds": 300})
			return d.body(map[string]any{"source_session_id": d.a, "target_session_id": d.b, "ttl_seconds": 301}), nil
		}, 403, "delegation_exceeds_parent_authority"},
		{"narrowing: parent ttl needs one on the child", func(d dw) (map[string]any, *string) {
			d.edge(d.root, d.a, map[string]any{"constraints": map[string]any{"max_hops": 3}, "ttl_seconds": 300})
			return d.body(map[string]any{"source_session_id": d.a, "target_session_id": d.b, "ttl_seconds": nil,
				"expires_at": "2026-08-22T10:01:00.000Z"}), nil
		}, 403, "delegation_exceeds_parent_authority"},
		{"narrowing: requested expiry after parent's", func(d dw) (map[string]any, *string) {
			d.edge(d.root, d.a, map[string]any{"constraints": map[string]any{"max_hops": 3}, "ttl_seconds": nil,
				"expires_at": "2026-08-22T10:05:00.000Z"})
			return d.body(map[string]any{"source_session_id": d.a, "target_session_id": d.b, "ttl_seconds": nil,
				"constraints": map[string]any{"expires_at": "2026-08-22T10:06:00Z"}}), nil
		}, 403, "delegation_exceeds_parent_authority"},
		{"narrowing: budget", func(d dw) (map[string]any, *string) {
			d.edge(d.root, d.a, map[string]any{"constraints": map[string]any{"max_hops": 3, "budget": 1}, "scopes": []string{"tickets:read", "tickets:write"}})
			return d.body(map[string]any{"source_session_id": d.a, "target_session_id": d.b, "scopes": []string{"tickets:read", "tickets:write"}}), nil
		}, 403, "delegation_exceeds_parent_authority"},
		// row 18
		{"cycle", func(d dw) (map[string]any, *string) {
			d.edge(d.a, d.b, map[string]any{"constraints": map[string]any{"max_hops": 3}})
			return d.body(map[string]any{"source_session_id": d.b, "target_session_id": d.a}), nil
		}, 409, "delegation_cycle_denied"},
		// row 19
		{"expired root edge", func(d dw) (map[string]any, *string) {
			return d.body(map[string]any{"ttl_seconds": nil, "expires_at": "2026-08-22T09:59:59.000Z"}), nil
		}, 400, "delegation_expired"},
		// row 20
		{"child outlives parent", func(d dw) (map[string]any, *string) {
			d.edge(d.root, d.a, map[string]any{"constraints": map[string]any{"max_hops": 3}, "ttl_seconds": 300})
			return d.body(map[string]any{"source_session_id": d.a, "target_session_id": d.b, "ttl_seconds": nil,
				"constraints": map[string]any{"ttl_seconds": 200}, "expires_at": nil}), withParentTTLElapsing(d)
		}, 403, "delegation_exceeds_parent_authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDelegationWorld(t)
			body, token := tc.setup(d)
			d.tok = d.token("app-reporter")
			got := d.do(req{method: "POST", path: delegationsPath, body: encodeBody(t, body), token: token})
			require.Equal(t, tc.status, got.status, got.raw)
			assert.Equal(t, tc.code, got.code())
			if tc.code != "invalid_body" {
				assert.Equal(t, map[string]any{"error": tc.code}, got.body)
			}
		})
	}
}

// withParentTTLElapsing moves the clock so that a 200 s child outlives its
// 300 s parent edge, and returns nil (the default token).
func withParentTTLElapsing(d delegationWorld) *string {
	d.clock.Advance(150 * time.Second)
	return nil
}

// jsonNullValue encodes as JSON null inside a request map.
type jsonNullValue struct{}

func (jsonNullValue) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

func encodeBody(t *testing.T, body map[string]any) string { return mustJSONString(t, body) }

func TestCreateDelegationSuccess(t *testing.T) {
	t.Run("A3 shape", func(t *testing.T) {
		d := newDelegationWorld(t)
		d.clock.Advance(2400 * time.Millisecond)
		before := d.w.epoch
		got := d.delegate(d.body(nil))
		require.Equal(t, 201, got.status, got.raw)
		assert.Greater(t, d.w.epoch, before)
		b := got.body
		assert.Equal(t, "res-tickets", b["resource_id"])
		assert.Equal(t, map[string]any{"ttl_seconds": float64(600)}, b["constraints_json"])
		assert.Equal(t, "2026-08-22T10:10:02.400Z", b["expires_at"])
		assert.Equal(t, "2026-08-22T10:00:02.400Z", b["created_at"])
		assert.Equal(t, "active", b["status"])
		assert.Equal(t, float64(0), b["edge_version"])
		assert.Nil(t, b["revoked_at"])
		assert.Nil(t, b["parent_edge_id"])
		assert.Equal(t, []any{}, b["warnings"])
		assert.Equal(t, []any{"same_zone_endpoints_active", "resource_scope_checked", "source_authority_root", "typed_constraints_validated"}, b["allow_reason"])
		ea := b["effective_authority"].(map[string]any)
		assert.Equal(t, []any{"resource://tickets"}, ea["resources"])
		assert.Equal(t, float64(1), ea["max_hops"])
		assert.Equal(t, float64(600), ea["ttl_seconds"])
		assert.Equal(t, false, ea["broad"])
		assert.Equal(t, "res-tickets", ea["resource_id"])
		assert.Equal(t, []any{}, ea["parent_edges_considered"])
	})
	t.Run("constraints merge and normalize", func(t *testing.T) {
		d := newDelegationWorld(t)
		got := d.delegate(d.body(map[string]any{
			"resource_id":      nil,
			"ttl_seconds":      nil,
			"constraints_json": map[string]any{"max_depth": 2, "ttl_seconds": 100, "resources": []string{"resource://docs"}},
			"constraints":      map[string]any{"ttl_seconds": 200, "resources": []string{"resource://tickets"}},
		}))
		require.Equal(t, 201, got.status, got.raw)
		assert.Equal(t, map[string]any{"max_depth": float64(2), "max_hops": float64(2), "ttl_seconds": float64(200),
			"resources": []any{"resource://tickets"}}, got.body["constraints_json"])
		assert.Equal(t, "2026-08-22T10:03:20.000Z", got.body["expires_at"])
		assert.Nil(t, got.body["resource_id"])
	})
	t.Run("expires_at wins over ttl", func(t *testing.T) {
		d := newDelegationWorld(t)
		got := d.delegate(d.body(map[string]any{"expires_at": "2026-08-22T10:30:00.123456Z"}))
		require.Equal(t, 201, got.status, got.raw)
		assert.Equal(t, "2026-08-22T10:30:00.123Z", got.body["expires_at"])
	})
	t.Run("broad edge with the admin scope", func(t *testing.T) {
		d := newDelegationWorld(t)
		admin := d.token("app-reporter", func(c jwt.MapClaims) { c["scope"] = "agent:lifecycle coordinator.delegate_broad" })
		got := d.do(req{method: "POST", path: delegationsPath, body: encodeBody(t, d.body(map[string]any{"resource_id": nil, "scopes": []string{"anything"}})), token: &admin})
		require.Equal(t, 201, got.status, got.raw)
		assert.Equal(t, []any{"resource_null_delegation_broadens_resource_matching"}, got.body["warnings"])
		assert.Equal(t, "broad_delegation_elevated", got.body["allow_reason"].([]any)[1])
		assert.Equal(t, map[string]any{"policy_approved": true, "broad_reason": "resource_null_delegation", "ttl_seconds": float64(600)}, got.body["constraints_json"])
		assert.Equal(t, true, got.body["effective_authority"].(map[string]any)["broad"])
	})
	t.Run("narrowing under a parent edge", func(t *testing.T) {
		d := newDelegationWorld(t)
		parent := d.edge(d.root, d.a, map[string]any{"constraints": map[string]any{"max_hops": 3, "budget": 2}, "ttl_seconds": 900,
			"scopes": []string{"tickets:read", "tickets:write"}})
		got := d.delegate(d.body(map[string]any{"source_session_id": d.a, "target_session_id": d.b,
			"constraints": map[string]any{"max_hops": 2, "resources": []string{"resource://tickets"}}, "ttl_seconds": 300}))
		require.Equal(t, 201, got.status, got.raw)
		assert.Equal(t, parent, got.body["parent_edge_id"])
		assert.Equal(t, "parent_authority_narrowed", got.body["allow_reason"].([]any)[2])
		assert.Equal(t, []any{parent}, got.body["effective_authority"].(map[string]any)["parent_edges_considered"])
		d.w.mu.Lock()
		path, ok := d.w.edgePath(got.str("delegation_edge_id"))
		d.w.mu.Unlock()
		require.True(t, ok)
		assert.Equal(t, parent, path[0].id)
	})
	t.Run("parent_edge_id ignored without inbound edges", func(t *testing.T) {
		d := newDelegationWorld(t)
		got := d.delegate(d.body(map[string]any{"parent_edge_id": "edge-x"}))
		require.Equal(t, 201, got.status, got.raw)
		assert.Nil(t, got.body["parent_edge_id"])
	})
	t.Run("cross application delegation", func(t *testing.T) {
		d := newDelegationWorld(t)
		other := d.do(req{method: "POST", path: startPath, body: `{"application_id":"app-other"}`, token: tok(d.token("app-other"))})
		got := d.delegate(d.body(map[string]any{"target_session_id": other.str("agent_session_id"), "receiver_application_id": "app-other"}))
		assert.Equal(t, 201, got.status, got.raw)
	})
	t.Run("idempotent create", func(t *testing.T) {
		d := newDelegationWorld(t)
		h := map[string]string{"Idempotency-Key": "del-1"}
		first := d.delegate(d.body(nil), h)
		require.Equal(t, 201, first.status)
		again := d.delegate(d.body(map[string]any{"scopes": []string{"tickets:read"}}), h)
		assert.Equal(t, "true", again.header.Get("Idempotency-Replayed"))
		assert.Equal(t, first.raw, again.raw)
		assert.Equal(t, "idempotency_key_conflict", d.delegate(d.body(map[string]any{"ttl_seconds": 601}), h).code())
		assert.Equal(t, "idempotency_key_invalid", d.delegate(d.body(nil), map[string]string{"Idempotency-Key": "a\tb"}).code())
		require.Equal(t, 200, d.do(req{method: "PATCH", path: delegationsPath + "/" + first.str("delegation_edge_id") + "/revoke"}).status)
		d.tok = d.token("app-reporter")
		assert.Equal(t, "idempotency_result_inactive", d.delegate(d.body(nil), h).code())
	})
	t.Run("scopes sorted in the digest", func(t *testing.T) {
		d := newDelegationWorld(t)
		h := map[string]string{"Idempotency-Key": "del-2"}
		require.Equal(t, 201, d.delegate(d.body(map[string]any{"scopes": []string{"tickets:read", "tickets:write"}}), h).status)
		again := d.delegate(d.body(map[string]any{"scopes": []string{"tickets:write", "tickets:read"}}), h)
		assert.Equal(t, "true", again.header.Get("Idempotency-Replayed"))
	})
}

func TestRevokeDelegation(t *testing.T) {
	revoke := func(id string) req { return req{method: "PATCH", path: delegationsPath + "/" + id + "/revoke"} }
	t.Run("cascade", func(t *testing.T) {
		d := newDelegationWorld(t)
		sibling := d.task(d.root, map[string]any{"ttl_seconds": 7200})
		e1 := d.edge(d.root, d.a, map[string]any{"constraints": map[string]any{"max_hops": 3}})
		e2 := d.edge(d.a, d.b, map[string]any{"constraints": map[string]any{"max_hops": 2}})
		grand := d.start(map[string]any{"parent_id": d.b}).str("agent_session_id") // inherits e2
		unrelated := d.edge(d.root, sibling, nil)
		aRecord := d.session(d.a).SubjectRecordID
		epoch := d.w.epoch

		got := d.do(revoke(e1))
		require.Equal(t, 200, got.status, got.raw)
		assert.Equal(t, map[string]any{"revoked_edges": float64(3), "affected_sessions": float64(1), "terminated_sessions": float64(3)}, got.body)
		for _, id := range []string{e1, e2} {
			assert.Equal(t, "revoked", d.edgeStatus(id))
		}
		assert.Equal(t, "active", d.edgeStatus(unrelated))
		assert.Greater(t, d.w.epoch, epoch)
		for _, id := range []string{d.a, d.b, grand} {
			assert.Equal(t, "terminated", d.session(id).Status, id)
		}
		assert.Equal(t, "active", d.session(d.root).Status)
		d.w.mu.Lock()
		assert.Equal(t, "delegation_revoked", d.w.sessions[d.a].reason)
		assert.Equal(t, "revoked", d.w.records[aRecord].status, "the quirk: the target's application record is revoked")
		d.w.mu.Unlock()
		// ... which is the record behind the token every session here was
		// started with.
		got = d.do(req{method: "POST", path: startPath, body: `{"application_id":"app-reporter"}`})
		assert.Equal(t, 401, got.status)
		assert.Equal(t, "identity_revoked", got.code())
		d.tok = d.token("app-reporter")
		got = d.do(revoke(e1))
		assert.Equal(t, map[string]any{"error": "delegation_not_found"}, got.body)
	})
	t.Run("errors", func(t *testing.T) {
		d := newDelegationWorld(t)
		e1 := d.edge(d.root, d.a, nil)
		got := d.do(revoke("nope"))
		assert.Equal(t, 404, got.status)
		assert.Equal(t, "delegation_not_found", got.code())
		other := d.token("app-other")
		r := revoke(e1)
		r.token = &other
		got = d.do(r)
		assert.Equal(t, 403, got.status)
		assert.Equal(t, "issuer_ownership_required", got.code())
	})
}

func TestInboundLookups(t *testing.T) {
	d := newDelegationWorld(t)
	var ids []string
	for i := 0; i < 3; i++ {
		src := d.task("", map[string]any{"ttl_seconds": 7200})
		ids = append(ids, d.edge(src, d.a, nil))
		d.clock.Advance(time.Second)
	}
	list := func(q string, token *string) resp {
		return d.do(req{method: "GET", path: delegationsPath + "/inbound/" + d.a + q, token: token})
	}
	got := list("", nil)
	require.Equal(t, 200, got.status, got.raw)
	items := got.body["items"].([]any)
	require.Len(t, items, 3)
	assert.Equal(t, ids[2], items[0].(map[string]any)["id"], "newest first")
	assert.Equal(t, "res-tickets", items[0].(map[string]any)["resource_id"])
	assert.Nil(t, got.body["next_cursor"])

	got = list("?limit=2", nil)
	require.Len(t, got.body["items"], 2)
	assert.Equal(t, ids[1], got.body["next_cursor"])
	got = list("?limit=2&cursor="+ids[1], nil)
	require.Len(t, got.body["items"], 1)
	assert.Equal(t, ids[0], got.body["items"].([]any)[0].(map[string]any)["id"])
	assert.Equal(t, "invalid_query", list("?limit=0", nil).code())
	assert.Equal(t, "invalid_query", list("?limit=501", nil).code())
	assert.Equal(t, "invalid_cursor", list("?cursor=nope", nil).code())
	assert.Equal(t, "session_not_found", list("", tok(d.token("app-other"))).code())

	one := func(sid, id string, token *string) resp {
		return d.do(req{method: "GET", path: delegationsPath + "/inbound/" + sid + "/" + id, token: token})
	}
	got = one(d.a, ids[0], nil)
	require.Equal(t, 200, got.status)
	assert.Equal(t, map[string]any{"id": ids[0], "status": "active"}, got.body)
	assert.Equal(t, "delegation_not_found", one(d.b, ids[0], nil).code(), "wrong target")
	assert.Equal(t, "delegation_not_found", one(d.a, ids[0], tok(d.token("app-other"))).code(), "not the receiver")
	assert.Equal(t, "delegation_not_found", one(d.a, "nope", nil).code())
	d.clock.Advance(10 * time.Minute)
	d.tok = d.token("app-reporter")
	got = one(d.a, ids[0], nil)
	assert.Equal(t, 404, got.status, "expired")
	// Listing shows every status.
	assert.Len(t, list("", nil).body["items"], 3)
}
