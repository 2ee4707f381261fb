package caracaltest

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newExampleEnv is exactly the PROTOCOL §10 setup: resource://tickets
// (res-tickets) declares only tickets:read.
func newExampleEnv(t *testing.T) *coordEnv {
	return newCoordEnv(t, withResources(Resource{Identifier: "resource://tickets", ID: "res-tickets", Scopes: []string{"tickets:read"}}))
}

// at sets the clock to 10:00:00 + d.
func (e *coordEnv) at(d time.Duration) {
	e.clock.Set(exStart.Add(d))
}

func TestExampleA(t *testing.T) {
	e := newExampleEnv(t)
	sid := tokenSID(t, e.tok)

	// A1. Root spawn.
	e.at(1120 * time.Millisecond)
	a1 := e.do(req{method: "POST", path: "/zones/zone-acme/agents",
		header: map[string]string{
			"Idempotency-Key":      "6f1c0e9a2b3d4c5e8f7a6b5c4d3e2f10",
			"Idempotency-Key-Kind": "generated",
			"traceparent":          "00-5f1c2b3a4d5e6f708192a3b4c5d6e7f8-1a2b3c4d5e6f7081-01",
		},
		body: `{"application_id":"app-reporter","labels":["dispatcher"],"parent_authority":"inherit"}`})
	require.Equal(t, 201, a1.status, a1.raw)
	root := a1.str("agent_session_id")
	assert.Equal(t, map[string]any{
		"agent_session_id": root, "zone_id": "zone-acme", "application_id": "app-reporter",
		"parent_id": nil, "subject_authority_record_id": sid, "lifecycle": "task",
		"labels": []any{"dispatcher"}, "status": "active", "depth": float64(0), "ttl_seconds": float64(3600),
		"started_at": "2026-08-22T10:00:01.120Z", "last_heartbeat_at": nil, "heartbeat_deadline_at": nil,
		"lease_generation": float64(0), "delegation_edge_id": nil,
	}, a1.body)

	// A2. Child spawn with Grant.Narrow: parent_authority none.
	a2 := e.do(req{method: "POST", path: "/zones/zone-acme/agents",
		header: map[string]string{
			"Idempotency-Key":      "0a9b8c7d6e5f40312233445566778899",
			"Idempotency-Key-Kind": "generated",
			"traceparent":          "00-5f1c2b3a4d5e6f708192a3b4c5d6e7f8-2b3c4d5e6f708192-01",
		},
		body: `{"application_id":"app-reporter","parent_id":"` + root + `","ttl_seconds":600,
 "labels":["reader"],"parent_authority":"none"}`})
	require.Equal(t, 201, a2.status, a2.raw)
	child := a2.str("agent_session_id")
	assert.Equal(t, root, a2.body["parent_id"])
	assert.Equal(t, float64(1), a2.body["depth"])
	assert.Equal(t, float64(600), a2.body["ttl_seconds"])
	assert.Equal(t, []any{"reader"}, a2.body["labels"])
	assert.Nil(t, a2.body["delegation_edge_id"])

	// A3 failure variants first (each would make the SDK retire the child).
	a3body := func(drop string, scopes string) string {
		b := `{"issuer_application_id":"app-reporter","source_session_id":"` + root + `",
 "target_session_id":"` + child + `","receiver_application_id":"app-reporter",
 "scopes":` + scopes
		if drop != "resource" {
			b += `,"resource_id":"resource://tickets"`
		}
		if drop != "ttl" {
			b += `,"ttl_seconds":600`
		}
		return b + "}"
	}
	for _, v := range []struct {
		body   string
		status int
		code   string
	}{
		{a3body("ttl", `["tickets:read"]`), 400, "delegation_expiry_required"},
		{a3body("resource", `["tickets:read"]`), 403, "broad_delegation_permission_required"},
		{a3body("", `["tickets:write"]`), 403, "delegation_scopes_exceed_resource"},
	} {
		got := e.do(req{method: "POST", path: "/zones/zone-acme/delegations", body: v.body})
		assert.Equal(t, v.status, got.status, got.raw)
		assert.Equal(t, map[string]any{"error": v.code}, got.body)
	}

	// A3. Narrowing delegation.
	e.at(2400 * time.Millisecond)
	epoch := e.w.epoch
	a3 := e.do(req{method: "POST", path: "/zones/zone-acme/delegations", body: a3body("", `["tickets:read"]`)})
	require.Equal(t, 201, a3.status, a3.raw)
	edge := a3.str("delegation_edge_id")
	assert.Equal(t, map[string]any{
		"delegation_edge_id": edge, "zone_id": "zone-acme", "source_session_id": root,
		"target_session_id": child, "issuer_application_id": "app-reporter", "receiver_application_id": "app-reporter",
		"parent_edge_id": nil, "resource_id": "res-tickets", "scopes": []any{"tickets:read"},
		"constraints_json": map[string]any{"ttl_seconds": float64(600)}, "status": "active",
		"expires_at": "2026-08-22T10:10:02.400Z", "edge_version": float64(0), "revoked_at": nil,
		"created_at": "2026-08-22T10:00:02.400Z", "warnings": []any{},
		"allow_reason": []any{"same_zone_endpoints_active", "resource_scope_checked", "source_authority_root", "typed_constraints_validated"},
		"effective_authority": map[string]any{"source_session_id": root, "target_session_id": child, "parent_edge_id": nil,
			"resource_id": "res-tickets", "resources": []any{"resource://tickets"}, "scopes": []any{"tickets:read"},
			"expires_at": "2026-08-22T10:10:02.400Z", "max_hops": float64(1), "ttl_seconds": float64(600), "broad": false,
			"parent_edges_considered": []any{}},
	}, a3.body)
	assert.Equal(t, epoch+1, e.w.epoch)
	e.w.mu.Lock()
	path, ok := e.w.edgePath(edge)
	e.w.mu.Unlock()
	assert.True(t, ok, "a root narrowing is mintable")
	assert.Len(t, path, 1)

	// A7. Retire child first, then root.
	got := e.do(req{method: "DELETE", path: "/zones/zone-acme/agents/" + child})
	assert.Equal(t, 204, got.status)
	assert.Equal(t, "revoked", e.edgeStatus(edge))
	got = e.do(req{method: "DELETE", path: "/zones/zone-acme/agents/" + root})
	assert.Equal(t, 204, got.status)
	// Replaying A1's key now finds a dead result.
	got = e.do(req{method: "POST", path: "/zones/zone-acme/agents",
		header: map[string]string{"Idempotency-Key": "6f1c0e9a2b3d4c5e8f7a6b5c4d3e2f10", "Idempotency-Key-Kind": "generated"},
		body:   `{"application_id":"app-reporter","labels":["dispatcher"],"parent_authority":"inherit"}`})
	assert.Equal(t, "idempotency_result_inactive", got.code())
}

func TestExampleA7RootFirst(t *testing.T) {
	e := newExampleEnv(t)
	root := e.task("")
	child := e.task(root, map[string]any{"ttl_seconds": 600})
	assert.Equal(t, 204, e.do(req{method: "DELETE", path: "/zones/zone-acme/agents/" + root}).status)
	got := e.do(req{method: "DELETE", path: "/zones/zone-acme/agents/" + child})
	assert.Equal(t, 404, got.status)
	assert.Equal(t, map[string]any{"error": "session_not_found"}, got.body)
}

func TestExampleB(t *testing.T) {
	e := newExampleEnv(t)
	sid := tokenSID(t, e.tok)

	// B1. Start.
	e.at(1004 * time.Millisecond)
	b1 := e.do(req{method: "POST", path: "/zones/zone-acme/agents",
		header: map[string]string{"Idempotency-Key": "1e2d3c4b5a6978877665544332211000", "Idempotency-Key-Kind": "generated"},
		body:   `{"application_id":"app-reporter","lifecycle":"service","labels":["billing-worker"],"parent_authority":"inherit"}`})
	require.Equal(t, 201, b1.status, b1.raw)
	id := b1.str("agent_session_id")
	assert.Equal(t, map[string]any{
		"agent_session_id": id, "zone_id": "zone-acme", "application_id": "app-reporter",
		"parent_id": nil, "subject_authority_record_id": sid, "lifecycle": "service",
		"labels": []any{"billing-worker"}, "status": "active", "depth": float64(0), "ttl_seconds": nil,
		"started_at": "2026-08-22T10:00:01.004Z", "last_heartbeat_at": "2026-08-22T10:00:01.004Z",
		"heartbeat_deadline_at": "2026-08-22T10:02:01.004Z", "lease_generation": float64(1), "delegation_edge_id": nil,
	}, b1.body)

	// B2. Heartbeat.
	e.at(41010 * time.Millisecond)
	b2 := e.do(req{method: "POST", path: heartbeatPath(id), body: `{"status":"healthy","lease_generation":1}`})
	require.Equal(t, 200, b2.status, b2.raw)
	assert.Equal(t, map[string]any{
		"agent": map[string]any{"id": id, "zone_id": "zone-acme", "application_id": "app-reporter",
			"status": "active", "last_active_at": "2026-08-22T10:00:41.010Z", "last_heartbeat_at": "2026-08-22T10:00:41.010Z",
			"heartbeat_deadline_at": "2026-08-22T10:02:41.010Z", "lease_generation": float64(1)},
		"service": nil, "active_invocations": float64(0),
	}, b2.body)

	// B3. Takeover with a fresh token.
	e.at(65 * time.Second)
	l2 := e.token("app-reporter")
	b3 := e.do(req{method: "POST", path: startPath + "/" + id + "/lease", token: &l2})
	require.Equal(t, 200, b3.status, b3.raw)
	assert.Equal(t, map[string]any{"status": "active", "heartbeat_deadline_at": "2026-08-22T10:03:05.000Z", "lease_generation": float64(2)}, b3.body)
	got := e.do(req{method: "POST", path: heartbeatPath(id), body: `{"status":"healthy","lease_generation":1}`})
	assert.Equal(t, 409, got.status)
	assert.Equal(t, map[string]any{"error": "session_lease_fenced"}, got.body)

	// B4. Close by the new holder, after its two refusals.
	got = e.do(req{method: "DELETE", path: startPath + "/" + id, token: &l2})
	assert.Equal(t, 400, got.status)
	assert.Equal(t, map[string]any{"error": "lease_generation_required"}, got.body)
	got = e.do(req{method: "DELETE", path: startPath + "/" + id, token: &l2, body: `{"lease_generation":1}`})
	assert.Equal(t, 409, got.status)
	assert.Equal(t, map[string]any{"error": "session_lease_fenced"}, got.body)
	got = e.do(req{method: "DELETE", path: startPath + "/" + id, token: &l2, body: `{"lease_generation":2}`})
	assert.Equal(t, 204, got.status)
	assert.Empty(t, got.raw)

	// Variant: heartbeat after close.
	got = e.do(req{method: "POST", path: heartbeatPath(id), token: &l2, body: `{"status":"healthy","lease_generation":2}`})
	assert.Equal(t, 409, got.status)
	assert.Equal(t, map[string]any{"error": "session_not_live"}, got.body)
}

func TestExampleBVariants(t *testing.T) {
	e := newExampleEnv(t)
	id := e.service("")
	child := e.service(id)

	// Heartbeat without lease_generation, or without a body: the live
	// Coordinator's lease_generation_required (PROTOCOL "Verified live"
	// overrides example B's invalid_body).
	for _, body := range []string{`{"status":"healthy"}`, ``} {
		got := e.do(req{method: "POST", path: heartbeatPath(id), body: body})
		require.Equal(t, 400, got.status, "body %q", body)
		assert.Equal(t, map[string]any{"error": "lease_generation_required"}, got.body, "body %q", body)
	}
	// A lease_generation of the wrong shape is still a schema failure.
	got := e.do(req{method: "POST", path: heartbeatPath(id), body: `{"status":"healthy","lease_generation":0}`})
	require.Equal(t, 400, got.status)
	assert.Equal(t, "invalid_body", got.code())
	issues := got.body["details"].(map[string]any)["issues"].([]any)
	assert.Equal(t, []any{"lease_generation"}, issues[0].(map[string]any)["path"])

	// A gateway mandate as bearer.
	gw := e.token("app-reporter", func(c jwt.MapClaims) { c["use"] = "gateway"; c["scope"] = "tickets:read" })
	got = e.do(req{method: "POST", path: heartbeatPath(id), token: &gw, body: `{"status":"healthy","lease_generation":1}`})
	assert.Equal(t, 401, got.status)
	assert.Equal(t, map[string]any{"error": "invalid_token"}, got.body)

	// Heartbeat on a task.
	task := e.task("")
	got = e.do(req{method: "POST", path: heartbeatPath(task), body: `{"status":"healthy","lease_generation":1}`})
	assert.Equal(t, map[string]any{"error": "session_not_service"}, got.body)

	// After the deadline while active: expired, subtree suspended.
	e.at(2*time.Minute + time.Second)
	e.tok = e.token("app-reporter")
	got = e.do(req{method: "POST", path: heartbeatPath(id), body: `{"status":"healthy","lease_generation":1}`})
	assert.Equal(t, 409, got.status)
	assert.Equal(t, map[string]any{"error": "session_lease_expired"}, got.body)
	assert.Equal(t, "suspended", e.session(id).Status)
	assert.Equal(t, "suspended", e.session(child).Status)
	// The next heartbeat: 200, suspended.
	got = e.do(req{method: "POST", path: heartbeatPath(id), body: `{"status":"healthy","lease_generation":1}`})
	require.Equal(t, 200, got.status)
	assert.Equal(t, "suspended", got.body["agent"].(map[string]any)["status"])
	// Attach refused while suspended.
	got = e.do(req{method: "POST", path: startPath + "/" + id + "/lease"})
	assert.Equal(t, map[string]any{"error": "session_suspended"}, got.body)
	// Resume, then attach works again.
	got = e.do(req{method: "PATCH", path: startPath + "/" + id + "/resume"})
	require.Equal(t, 200, got.status)
	assert.Equal(t, 200, e.do(req{method: "POST", path: startPath + "/" + id + "/lease"}).status)
}

func TestExampleD(t *testing.T) {
	for _, tc := range []struct {
		name           string
		e1Hops         int
		extra          string
		status         int
		mintableE2     bool
		wantAllowIndex string
	}{
		{name: "as written", e1Hops: 2, status: 201, mintableE2: false},
		{name: "max_hops 2 needs E1 at 3", e1Hops: 2, extra: `,"max_hops":2`, status: 403},
		{name: "E1 at 3 lets E2 mint", e1Hops: 3, extra: `,"max_hops":2`, status: 201, mintableE2: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newExampleEnv(t)
			long := map[string]any{"ttl_seconds": 7200}
			root := e.task("", long)
			s1 := e.task(root, long)
			s2 := e.task(root, long)
			e1 := e.edge(root, s1, map[string]any{"constraints": map[string]any{"max_hops": tc.e1Hops}})

			got := e.do(req{method: "POST", path: "/zones/zone-acme/delegations",
				header: map[string]string{"Idempotency-Key": "4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e"},
				body: `{"issuer_application_id":"app-reporter","source_session_id":"` + s1 + `","target_session_id":"` + s2 + `",
 "receiver_application_id":"app-reporter","parent_edge_id":"` + e1 + `","scopes":["tickets:read"],
 "constraints":{"resources":["resource://tickets"]` + tc.extra + `},"ttl_seconds":300}`})
			require.Equal(t, tc.status, got.status, got.raw)
			if tc.status != 201 {
				assert.Equal(t, map[string]any{"error": "delegation_exceeds_parent_authority"}, got.body)
				return
			}
			e2 := got.str("delegation_edge_id")
			assert.Equal(t, "parent_authority_narrowed", got.body["allow_reason"].([]any)[2])
			assert.Equal(t, e1, got.body["parent_edge_id"])

			got = e.do(req{method: "GET", path: "/zones/zone-acme/delegations/inbound/" + s2 + "/" + e2})
			require.Equal(t, 200, got.status)
			assert.Equal(t, map[string]any{"id": e2, "status": "active"}, got.body)

			e.w.mu.Lock()
			_, ok := e.w.edgePath(e2)
			e.w.mu.Unlock()
			assert.Equal(t, tc.mintableE2, ok, "an edge at depth 2 mints only with max_hops >= 2")
		})
	}
}

// tokenSID reads the sid claim of a token.
func tokenSID(t *testing.T, token string) string {
	var c jwt.MapClaims
	_, _, err := jwt.NewParser().ParseUnverified(token, &c)
	require.NoError(t, err)
	return c["sid"].(string)
}
