package caracaltest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func heartbeatPath(id string) string { return startPath + "/" + id + "/heartbeat" }

func TestHeartbeat(t *testing.T) {
	hb := func(gen int) string { return fmt.Sprintf(`{"status":"healthy","lease_generation":%d}`, gen) }
	t.Run("renews", func(t *testing.T) {
		e := newCoordEnv(t)
		id := e.service("")
		e.clock.Advance(40*time.Second + 10*time.Millisecond)
		got := e.do(req{method: "POST", path: heartbeatPath(id), body: `{"lease_generation":1,"active_invocations":3}`})
		require.Equal(t, 200, got.status, got.raw)
		agent := got.body["agent"].(map[string]any)
		assert.Equal(t, id, agent["id"])
		assert.Equal(t, "active", agent["status"])
		assert.Equal(t, "2026-08-22T10:00:40.010Z", agent["last_heartbeat_at"])
		assert.Equal(t, "2026-08-22T10:00:40.010Z", agent["last_active_at"])
		assert.Equal(t, "2026-08-22T10:02:40.010Z", agent["heartbeat_deadline_at"])
		assert.Equal(t, float64(1), agent["lease_generation"])
		assert.Nil(t, got.body["service"])
		assert.Contains(t, got.body, "service")
		assert.Equal(t, float64(3), got.body["active_invocations"])
	})
	for _, tc := range []struct {
		name   string
		setup  func(e *coordEnv) (id, body string, token *string)
		status int
		code   string
		after  func(t *testing.T, e *coordEnv, id string)
	}{
		{name: "generation missing", setup: func(e *coordEnv) (string, string, *string) {
			return e.service(""), `{"status":"healthy"}`, nil
		}, status: 400, code: "lease_generation_required"},
		{name: "generation missing, unknown session", setup: func(e *coordEnv) (string, string, *string) {
			return "nope", `{"status":"healthy"}`, nil
		}, status: 404, code: "session_not_found"},
		{name: "generation missing, bad status", setup: func(e *coordEnv) (string, string, *string) {
			return e.service(""), `{"status":"great"}`, nil
		}, status: 400, code: "invalid_body"},
		{name: "schema: generation zero", setup: func(e *coordEnv) (string, string, *string) {
			return e.service(""), `{"status":"healthy","lease_generation":0}`, nil
		}, status: 400, code: "invalid_body"},
		{name: "schema: bad status", setup: func(e *coordEnv) (string, string, *string) {
			return e.service(""), `{"status":"great","lease_generation":1}`, nil
		}, status: 400, code: "invalid_body"},
		{name: "schema: negative invocations", setup: func(e *coordEnv) (string, string, *string) {
			return e.service(""), `{"lease_generation":1,"active_invocations":-1}`, nil
		}, status: 400, code: "invalid_body"},
		{name: "unknown session", setup: func(e *coordEnv) (string, string, *string) {
			return "nope", hb(1), nil
		}, status: 404, code: "session_not_found"},
		{name: "not owner", setup: func(e *coordEnv) (string, string, *string) {
			return e.service(""), hb(1), tok(e.token("app-other"))
		}, status: 403, code: "application_ownership_required"},
		{name: "not live", setup: func(e *coordEnv) (string, string, *string) {
			id := e.service("")
			require.NoError(e.t, e.w.terminate(id))
			return id, hb(9), nil
		}, status: 409, code: "session_not_live"},
		{name: "task", setup: func(e *coordEnv) (string, string, *string) {
			return e.task(""), hb(1), nil
		}, status: 409, code: "session_not_service"},
		{name: "user anchor inactive terminates", setup: func(e *coordEnv) (string, string, *string) {
			e.w.mu.Lock()
			rec := e.w.addRecord("user", "alice", "", e.clock.Now().Add(time.Minute))
			e.w.mu.Unlock()
			id := e.start(map[string]any{"lifecycle": "service", "subject_session_id": rec.id}).str("agent_session_id")
			child := e.service(id)
			e.w.mu.Lock()
			e.w.revokeRecord(rec.id, "logout")
			e.w.mu.Unlock()
			_ = child
			return id, hb(1), nil
		}, status: 409, code: "session_subject_inactive", after: func(t *testing.T, e *coordEnv, id string) {
			assert.Equal(t, "terminated", e.session(id).Status)
			e.w.mu.Lock()
			kids := e.w.children[id]
			e.w.mu.Unlock()
			assert.Equal(t, "terminated", e.session(kids[0]).Status)
		}},
		{name: "fenced", setup: func(e *coordEnv) (string, string, *string) {
			return e.service(""), hb(2), nil
		}, status: 409, code: "session_lease_fenced"},
		{name: "fenced beats expired", setup: func(e *coordEnv) (string, string, *string) {
			id := e.service("")
			e.clock.Advance(121 * time.Second)
			e.tok = e.token("app-reporter")
			return id, hb(2), nil
		}, status: 409, code: "session_lease_fenced", after: func(t *testing.T, e *coordEnv, id string) {
			assert.Equal(t, "active", e.session(id).Status)
		}},
		{name: "expired suspends the subtree", setup: func(e *coordEnv) (string, string, *string) {
			id := e.service("")
			e.service(id)
			e.clock.Advance(120 * time.Second)
			e.tok = e.token("app-reporter")
			return id, hb(1), nil
		}, status: 409, code: "session_lease_expired", after: func(t *testing.T, e *coordEnv, id string) {
			assert.Equal(t, "suspended", e.session(id).Status)
			e.w.mu.Lock()
			kids := e.w.children[id]
			e.w.mu.Unlock()
			assert.Equal(t, "suspended", e.session(kids[0]).Status)
		}},
		{name: "no sid", setup: func(e *coordEnv) (string, string, *string) {
			return e.service(""), hb(1), tok(e.token("app-reporter", func(c jwt.MapClaims) { delete(c, "sid") }))
		}, status: 401, code: "authority_record_required"},
		{name: "sid of a user record", setup: func(e *coordEnv) (string, string, *string) {
			e.w.mu.Lock()
			rec := e.w.addRecord("user", "app-reporter", "", e.clock.Now().Add(time.Hour))
			e.w.mu.Unlock()
			return e.service(""), hb(1), tok(e.token("app-reporter", func(c jwt.MapClaims) { c["sid"] = rec.id }))
		}, status: 401, code: "identity_revoked"},
		{name: "sid of another application's record", setup: func(e *coordEnv) (string, string, *string) {
			e.w.mu.Lock()
			rec := e.w.addRecord("application", "app-other", "", e.clock.Now().Add(time.Hour))
			e.w.mu.Unlock()
			return e.service(""), hb(1), tok(e.token("app-reporter", func(c jwt.MapClaims) { c["sid"] = rec.id }))
		}, status: 401, code: "identity_revoked"},
		{name: "service registration unknown", setup: func(e *coordEnv) (string, string, *string) {
			return e.service(""), `{"lease_generation":1,"service_id":"svc-1"}`, nil
		}, status: 404, code: "agent_service_not_found"},
		{name: "gateway mandate as bearer", setup: func(e *coordEnv) (string, string, *string) {
			return e.service(""), hb(1), tok(e.token("app-reporter", func(c jwt.MapClaims) { c["use"] = "gateway" }))
		}, status: 401, code: "invalid_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCoordEnv(t)
			id, body, token := tc.setup(e)
			got := e.do(req{method: "POST", path: heartbeatPath(id), body: body, token: token})
			require.Equal(t, tc.status, got.status, got.raw)
			assert.Equal(t, tc.code, got.code())
			if tc.after != nil {
				tc.after(t, e, id)
			}
		})
	}
	t.Run("a suspended session is renewed but stays suspended", func(t *testing.T) {
		e := newCoordEnv(t)
		id := e.service("")
		require.NoError(t, e.w.suspend(id))
		e.clock.Advance(5 * time.Minute)
		e.tok = e.token("app-reporter")
		got := e.do(req{method: "POST", path: heartbeatPath(id), body: hb(1)})
		require.Equal(t, 200, got.status, got.raw)
		assert.Equal(t, "suspended", got.body["agent"].(map[string]any)["status"])
		assert.Equal(t, exStart.Add(7*time.Minute), e.session(id).Deadline)
	})
}

func TestAcquireLease(t *testing.T) {
	lease := func(id string) req { return req{method: "POST", path: startPath + "/" + id + "/lease"} }
	t.Run("bumps the generation and fences the old holder", func(t *testing.T) {
		e := newCoordEnv(t)
		id := e.service("")
		e.clock.Advance(24 * time.Second)
		got := e.do(lease(id))
		require.Equal(t, 200, got.status)
		assert.Equal(t, map[string]any{"status": "active", "heartbeat_deadline_at": "2026-08-22T10:02:24.000Z", "lease_generation": float64(2)}, got.body)
		assert.Equal(t, 200, e.do(lease(id)).status)
		assert.Equal(t, int64(3), e.session(id).Generation)
		assert.Equal(t, "session_lease_fenced", e.do(req{method: "POST", path: heartbeatPath(id), body: `{"lease_generation":2}`}).code())
	})
	for _, tc := range []struct {
		name   string
		setup  func(e *coordEnv) (string, *string)
		status int
		code   string
		after  func(t *testing.T, e *coordEnv, id string)
	}{
		{"unknown", func(e *coordEnv) (string, *string) { return "nope", nil }, 404, "session_not_found", nil},
		{"not owner", func(e *coordEnv) (string, *string) { return e.service(""), tok(e.token("app-other")) }, 403, "application_ownership_required", nil},
		{"task", func(e *coordEnv) (string, *string) { return e.task(""), nil }, 409, "session_not_service", nil},
		{"suspended", func(e *coordEnv) (string, *string) {
			id := e.service("")
			require.NoError(e.t, e.w.suspend(id))
			return id, nil
		}, 409, "session_suspended", nil},
		{"terminated", func(e *coordEnv) (string, *string) {
			id := e.service("")
			require.NoError(e.t, e.w.terminate(id))
			return id, nil
		}, 409, "session_not_live", nil},
		{"expired", func(e *coordEnv) (string, *string) {
			id := e.service("")
			e.clock.Advance(3 * time.Minute)
			e.tok = e.token("app-reporter")
			return id, nil
		}, 409, "session_lease_expired", func(t *testing.T, e *coordEnv, id string) {
			assert.Equal(t, "suspended", e.session(id).Status)
			assert.Equal(t, int64(1), e.session(id).Generation)
		}},
		{"no sid", func(e *coordEnv) (string, *string) {
			return e.service(""), tok(e.token("app-reporter", func(c jwt.MapClaims) { delete(c, "sid") }))
		}, 401, "authority_record_required", nil},
		{"sid of another application's record", func(e *coordEnv) (string, *string) {
			e.w.mu.Lock()
			rec := e.w.addRecord("application", "app-other", "", e.clock.Now().Add(time.Hour))
			e.w.mu.Unlock()
			return e.service(""), tok(e.token("app-reporter", func(c jwt.MapClaims) { c["sid"] = rec.id }))
		}, 401, "identity_revoked", func(t *testing.T, e *coordEnv, id string) {
			assert.Equal(t, int64(1), e.session(id).Generation)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCoordEnv(t)
			id, token := tc.setup(e)
			r := lease(id)
			r.token = token
			got := e.do(r)
			require.Equal(t, tc.status, got.status, got.raw)
			assert.Equal(t, map[string]any{"error": tc.code}, got.body)
			if tc.after != nil {
				tc.after(t, e, id)
			}
		})
	}
}

func TestSweep(t *testing.T) {
	t.Run("lease sweeper", func(t *testing.T) {
		e := newCoordEnv(t)
		svc := e.service("")
		child := e.task(svc)
		fresh := e.service("")
		edge := e.edge(svc, child, nil)
		e.clock.Advance(100 * time.Second)
		require.Equal(t, 200, e.do(req{method: "POST", path: heartbeatPath(fresh), body: `{"lease_generation":1}`}).status)
		e.clock.Advance(20 * time.Second)
		e.w.sweep()
		assert.Equal(t, "active", e.session(svc).Status, "deadline == now is not yet past")
		e.clock.Advance(time.Millisecond)
		e.w.sweep()
		assert.Equal(t, "suspended", e.session(svc).Status)
		assert.Equal(t, "suspended", e.session(child).Status)
		assert.Equal(t, "active", e.session(fresh).Status)
		assert.Equal(t, "active", e.edgeStatus(edge), "suspension keeps edges")
	})
	t.Run("ttl sweeper", func(t *testing.T) {
		e := newCoordEnv(t)
		root := e.task("", map[string]any{"ttl_seconds": 60})
		child := e.task(root, map[string]any{"ttl_seconds": 600})
		keep := e.task("", map[string]any{"ttl_seconds": 600})
		edge := e.edge(root, child, nil)
		e.clock.Advance(61 * time.Second)
		e.w.sweep()
		assert.Equal(t, "expired", e.session(root).Status)
		assert.Equal(t, "terminated", e.session(child).Status)
		assert.Equal(t, "active", e.session(keep).Status)
		assert.Equal(t, "revoked", e.edgeStatus(edge))
		e.w.mu.Lock()
		assert.Equal(t, "ttl", e.w.sessions[root].reason)
		e.w.mu.Unlock()
	})
	t.Run("edges past their expiry are marked expired", func(t *testing.T) {
		e := newCoordEnv(t)
		long := map[string]any{"ttl_seconds": 7200}
		root := e.task("", long)
		edge := e.edge(root, e.task(root, long), map[string]any{"ttl_seconds": 60})
		e.clock.Advance(59 * time.Second)
		e.w.sweep()
		assert.Equal(t, "active", e.edgeStatus(edge))
		e.clock.Advance(time.Second)
		epoch := e.w.epoch
		e.w.sweep()
		assert.Equal(t, "expired", e.edgeStatus(edge))
		assert.Equal(t, epoch+1, e.w.epoch)
		assert.Equal(t, "delegation_not_found", e.do(req{method: "PATCH", path: delegationsPath + "/" + edge + "/revoke"}).code())
	})
	t.Run("suspended tasks expire too", func(t *testing.T) {
		e := newCoordEnv(t)
		svc := e.service("")
		child := e.task(svc, map[string]any{"ttl_seconds": 30})
		require.NoError(t, e.w.suspend(svc))
		e.clock.Advance(31 * time.Second)
		e.w.sweep()
		assert.Equal(t, "expired", e.session(child).Status)
		assert.Equal(t, "suspended", e.session(svc).Status)
	})
}

func TestConcurrentLeaseAcquire(t *testing.T) {
	e := newCoordEnv(t)
	id := e.service("")
	const n = 16
	gens := make(chan float64, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			r := e.do(req{method: "POST", path: startPath + "/" + id + "/lease"})
			gens <- r.body["lease_generation"].(float64)
		})
	}
	wg.Wait()
	close(gens)
	seen := map[float64]bool{}
	for g := range gens {
		assert.False(t, seen[g], "generation %v handed out twice", g)
		seen[g] = true
	}
	assert.Len(t, seen, n)
	assert.Equal(t, int64(n+1), e.session(id).Generation)
}
