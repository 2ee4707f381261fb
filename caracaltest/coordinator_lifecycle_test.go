package caracaltest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIdempotentStart(t *testing.T) {
	body := `{"application_id":"app-reporter","labels":["dispatcher"]}`
	keyed := func(key string, extra ...string) req {
		h := map[string]string{"Idempotency-Key": key}
		if len(extra) > 0 {
			h["Idempotency-Key-Kind"] = extra[0]
		}
		return req{method: "POST", path: startPath, body: body, header: h}
	}

	t.Run("replay, conflict, inactive", func(t *testing.T) {
		e := newCoordEnv(t)
		first := e.do(keyed("k1"))
		require.Equal(t, 201, first.status)
		assert.Empty(t, first.header.Get("Idempotency-Replayed"))
		again := e.do(keyed("k1"))
		require.Equal(t, 201, again.status)
		assert.Equal(t, "true", again.header.Get("Idempotency-Replayed"))
		assert.Equal(t, first.raw, again.raw)
		assert.Len(t, e.w.sessions, 1)

		r := keyed("k1")
		r.body = `{"application_id":"app-reporter","labels":["other"]}`
		got := e.do(r)
		assert.Equal(t, 409, got.status)
		assert.Equal(t, "idempotency_key_conflict", got.code())
		assert.NotEmpty(t, got.body["message"])

		// Labels are trimmed before the digest.
		r.body = `{"application_id":"app-reporter","labels":[" dispatcher"]}`
		assert.Equal(t, 201, e.do(r).status)

		id := first.str("agent_session_id")
		require.Equal(t, 204, e.do(req{method: "DELETE", path: startPath + "/" + id}).status)
		got = e.do(keyed("k1"))
		assert.Equal(t, 409, got.status)
		assert.Equal(t, "idempotency_result_inactive", got.code())
		assert.NotEmpty(t, got.body["message"])
	})
	t.Run("the digest covers the token's record unless pinned", func(t *testing.T) {
		e := newCoordEnv(t)
		require.Equal(t, 201, e.do(keyed("k")).status)
		e.tok = e.token("app-reporter") // refreshed: new sid
		got := e.do(keyed("k"))
		assert.Equal(t, 409, got.status)
		assert.Equal(t, "idempotency_key_conflict", got.code())

		sid := e.claims("app-reporter")["sid"].(string)
		pinned := keyed("p")
		pinned.body = `{"application_id":"app-reporter","subject_session_id":"` + sid + `"}`
		require.Equal(t, 201, e.do(pinned).status)
		e.tok = e.token("app-reporter")
		got = e.do(pinned)
		assert.Equal(t, 201, got.status)
		assert.Equal(t, "true", got.header.Get("Idempotency-Replayed"))
	})
	t.Run("a service replay returns the stored generation", func(t *testing.T) {
		e := newCoordEnv(t)
		r := keyed("svc")
		r.body = `{"application_id":"app-reporter","lifecycle":"service"}`
		first := e.do(r)
		id := first.str("agent_session_id")
		require.Equal(t, 200, e.do(req{method: "POST", path: startPath + "/" + id + "/lease"}).status)
		again := e.do(r)
		assert.Equal(t, float64(1), again.body["lease_generation"])
		assert.Equal(t, int64(2), e.session(id).Generation)
	})
	t.Run("retention: generated 24 h, caller keys 7 days", func(t *testing.T) {
		e := newCoordEnv(t)
		require.Equal(t, 201, e.do(keyed("gen", "generated")).status)
		require.Equal(t, 201, e.do(keyed("own")).status)
		e.clock.Advance(24*time.Hour + time.Second)
		e.tok = e.token("app-reporter")
		// The sessions are long dead; a kept receipt says so, a dropped one
		// executes again (and the new token's sid makes a new digest).
		got := e.do(keyed("gen", "generated"))
		assert.Equal(t, 201, got.status)
		assert.Empty(t, got.header.Get("Idempotency-Replayed"))
		assert.Equal(t, 409, e.do(keyed("own")).status)
		e.clock.Advance(6 * 24 * time.Hour)
		e.tok = e.token("app-reporter")
		assert.Equal(t, 201, e.do(keyed("own")).status)
	})
	t.Run("receipt limit", func(t *testing.T) {
		e := newCoordEnv(t, withLimits(Limits{ReceiptsPerScope: 2}))
		require.Equal(t, 201, e.do(keyed("a")).status)
		require.Equal(t, 201, e.do(keyed("b")).status)
		got := e.do(keyed("c"))
		assert.Equal(t, 429, got.status)
		assert.Equal(t, map[string]any{"error": "idempotency_receipt_limit_exceeded"}, got.body)
		assert.Len(t, e.w.sessions, 2, "the 429 executes nothing")
		assert.Equal(t, 201, e.do(req{method: "POST", path: startPath, body: body}).status, "unkeyed starts still work")
		assert.Equal(t, "true", e.do(keyed("a")).header.Get("Idempotency-Replayed"), "existing keys still replay")
		e.clock.Advance(7*24*time.Hour + time.Second)
		e.tok = e.token("app-reporter")
		assert.Equal(t, 201, e.do(keyed("c")).status, "expired receipts free the scope")
	})
	t.Run("failures store nothing", func(t *testing.T) {
		e := newCoordEnv(t)
		r := keyed("f")
		r.body = `{"application_id":"app-reporter","parent_id":"nope"}`
		assert.Equal(t, 404, e.do(r).status)
		r.body = body
		assert.Equal(t, 201, e.do(r).status)
	})
	for _, tc := range []struct {
		name string
		keys []string
		code string
	}{
		{"empty", []string{""}, "idempotency_key_invalid"},
		{"too long", []string{strings.Repeat("k", 256)}, "idempotency_key_invalid"},
		{"tab", []string{"a\tb"}, "idempotency_key_invalid"},
		{"multiple", []string{"a", "b"}, "idempotency_key_multiple"},
	} {
		t.Run("key "+tc.name, func(t *testing.T) {
			e := newCoordEnv(t)
			got := e.do(req{method: "POST", path: startPath, body: body, rawHeader: map[string][]string{"Idempotency-Key": tc.keys}})
			require.Equal(t, 400, got.status, got.raw)
			assert.Equal(t, tc.code, got.code())
			assert.NotEmpty(t, got.body["message"])
			assert.NotEmpty(t, got.body["request_id"])
			assert.NotContains(t, got.body, "requestId")
		})
	}
	t.Run("255 bytes is fine", func(t *testing.T) {
		e := newCoordEnv(t)
		assert.Equal(t, 201, e.do(keyed(strings.Repeat("é", 127)+"k")).status)
	})
	t.Run("key checked after ownership", func(t *testing.T) {
		e := newCoordEnv(t)
		r := keyed("")
		r.body = `{"application_id":"app-other"}`
		assert.Equal(t, "application_ownership_required", e.do(r).code())
	})
}

func TestRetire(t *testing.T) {
	t.Run("task cascade", func(t *testing.T) {
		e := newCoordEnv(t)
		root := e.task("")
		child := e.task(root)
		grand := e.task(child)
		other := e.task("")
		edge := e.edge(root, child, nil)
		cross := e.edge(other, grand, nil)
		got := e.do(req{method: "DELETE", path: startPath + "/" + child})
		require.Equal(t, 204, got.status)
		assert.Empty(t, got.raw)
		assert.Equal(t, "terminated", e.session(child).Status)
		assert.Equal(t, "terminated", e.session(grand).Status)
		assert.Equal(t, "active", e.session(root).Status)
		assert.Equal(t, "revoked", e.edgeStatus(edge))
		assert.Equal(t, "revoked", e.edgeStatus(cross))
		e.w.mu.Lock()
		assert.Equal(t, 0, e.w.sessions[root].childCount)
		assert.Equal(t, "requested", e.w.sessions[child].reason)
		assert.Equal(t, "active", e.w.records[e.w.sessions[child].subjectRecordID].status, "application records survive a retire")
		assert.Equal(t, "parent_terminated", e.w.sessions[grand].reason)
		e.w.mu.Unlock()
		// Application records are not revoked by retire.
		assert.Equal(t, 201, e.do(req{method: "POST", path: startPath, body: `{"application_id":"app-reporter"}`}).status)
		got = e.do(req{method: "DELETE", path: startPath + "/" + child})
		assert.Equal(t, 404, got.status)
		assert.Equal(t, "session_not_found", got.code())
	})
	t.Run("a user anchor is revoked with its session", func(t *testing.T) {
		e := newCoordEnv(t)
		e.w.mu.Lock()
		rec := e.w.addRecord("user", "alice", "", e.clock.Now().Add(time.Hour))
		e.w.mu.Unlock()
		id := e.task("", map[string]any{"subject_session_id": rec.id})
		require.Equal(t, 204, e.do(req{method: "DELETE", path: startPath + "/" + id}).status)
		e.w.mu.Lock()
		assert.Equal(t, "revoked", rec.status)
		e.w.mu.Unlock()
	})
	t.Run("reason query", func(t *testing.T) {
		e := newCoordEnv(t)
		id := e.task("")
		assert.Equal(t, "invalid_query", e.do(req{method: "DELETE", path: startPath + "/" + id + "?reason="}).code())
		assert.Equal(t, "invalid_query", e.do(req{method: "DELETE", path: startPath + "/" + id + "?reason=" + strings.Repeat("r", 257)}).code())
		assert.Equal(t, 204, e.do(req{method: "DELETE", path: startPath + "/" + id + "?reason=done"}).status)
		e.w.mu.Lock()
		assert.Equal(t, "done", e.w.sessions[id].reason)
		e.w.mu.Unlock()
	})
	t.Run("errors", func(t *testing.T) {
		e := newCoordEnv(t)
		svc := e.service("")
		task := e.task("")
		otherTok := e.token("app-other")
		for _, tc := range []struct {
			name   string
			id     string
			body   string
			token  *string
			status int
			code   string
		}{
			{"unknown", "nope", "", nil, 404, "session_not_found"},
			{"not owner", task, "", &otherTok, 403, "application_ownership_required"},
			{"service without generation", svc, "", nil, 400, "lease_generation_required"},
			{"service empty object", svc, `{}`, nil, 400, "lease_generation_required"},
			{"service wrong generation", svc, `{"lease_generation":2}`, nil, 409, "session_lease_fenced"},
			{"generation zero", svc, `{"lease_generation":0}`, nil, 400, "invalid_body"},
			{"generation string", svc, `{"lease_generation":"1"}`, nil, 400, "invalid_body"},
			{"body not an object", svc, `1`, nil, 400, "invalid_body"},
			{"task with a body is fine", task, `{"lease_generation":1}`, nil, 204, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got := e.do(req{method: "DELETE", path: startPath + "/" + tc.id, body: tc.body, token: tc.token})
				require.Equal(t, tc.status, got.status, got.raw)
				if tc.code != "" {
					assert.Equal(t, map[string]any{"error": tc.code}, got.body)
				}
			})
		}
		got := e.do(req{method: "DELETE", path: startPath + "/" + svc, body: `{"lease_generation":1}`})
		assert.Equal(t, 204, got.status)
		got = e.do(req{method: "DELETE", path: startPath + "/" + svc, body: `{"lease_generation":1}`})
		assert.Equal(t, 404, got.status)
		got = e.do(req{method: "DELETE", path: startPath + "/" + svc, body: `{"lease_generation":3}`})
		assert.Equal(t, "session_lease_fenced", got.code(), "fencing comes before the status check")
	})
	t.Run("admin retires a service without a generation", func(t *testing.T) {
		e := newCoordEnv(t)
		svc := e.service("")
		admin := e.token("app-reporter", func(c jwt.MapClaims) { c["scope"] = "agent:lifecycle coordinator.admin" })
		assert.Equal(t, 204, e.do(req{method: "DELETE", path: startPath + "/" + svc, token: &admin}).status)
	})
	t.Run("an elapsed task can still be retired before the sweep", func(t *testing.T) {
		e := newCoordEnv(t)
		id := e.task("", map[string]any{"ttl_seconds": 10})
		e.clock.Advance(time.Minute)
		e.tok = e.token("app-reporter")
		assert.Equal(t, 204, e.do(req{method: "DELETE", path: startPath + "/" + id}).status)
		id = e.task("", map[string]any{"ttl_seconds": 10})
		e.clock.Advance(time.Minute)
		e.w.sweep()
		e.tok = e.token("app-reporter")
		assert.Equal(t, 404, e.do(req{method: "DELETE", path: startPath + "/" + id}).status)
	})
}

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
		{name: "schema: generation missing", setup: func(e *coordEnv) (string, string, *string) {
			return e.service(""), `{"status":"healthy"}`, nil
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

func TestGetSuspendResume(t *testing.T) {
	e := newCoordEnv(t)
	svc := e.start(map[string]any{"lifecycle": "service", "metadata": map[string]any{"task": "billing"}}).str("agent_session_id")
	child := e.task(svc)
	require.Equal(t, 200, e.do(req{method: "POST", path: startPath + "/" + svc + "/lease"}).status)

	got := e.do(req{method: "GET", path: startPath + "/" + svc, token: tok(e.token("app-other"))})
	require.Equal(t, 200, got.status, "reads have no ownership check")
	assert.Equal(t, "2", got.body["lease_generation"], "bigint as a JSON string")
	assert.Equal(t, map[string]any{"task": "billing"}, got.body["metadata"])
	assert.Nil(t, got.body["terminated_at"])
	assert.Nil(t, got.body["ttl_seconds"])
	assert.Equal(t, "2026-08-22T10:02:00.000Z", got.body["heartbeat_deadline_at"])
	got = e.do(req{method: "GET", path: startPath + "/" + child})
	assert.Equal(t, "0", got.body["lease_generation"])
	assert.Equal(t, float64(3600), got.body["ttl_seconds"])
	assert.Equal(t, map[string]any{}, got.body["metadata"])
	assert.Equal(t, "session_not_found", e.do(req{method: "GET", path: startPath + "/nope"}).code())

	patch := func(id, verb string, token *string) resp {
		return e.do(req{method: "PATCH", path: startPath + "/" + id + "/" + verb, token: token})
	}
	assert.Equal(t, "application_ownership_required", patch(svc, "suspend", tok(e.token("app-other"))).code())
	assert.Equal(t, "session_not_found_or_not_suspended", patch(svc, "resume", nil).code())
	e.clock.Advance(time.Minute)
	got = patch(svc, "suspend", nil)
	require.Equal(t, 200, got.status)
	assert.Equal(t, map[string]any{"suspended": float64(2)}, got.body)
	assert.Equal(t, "suspended", e.session(child).Status)
	assert.Equal(t, "session_not_found_or_not_active", patch(svc, "suspend", nil).code())
	assert.Equal(t, 409, patch("nope", "suspend", nil).status)
	e.clock.Advance(5 * time.Minute)
	got = patch(svc, "resume", nil)
	require.Equal(t, 200, got.status)
	assert.Equal(t, map[string]any{"resumed": float64(2)}, got.body)
	info := e.session(svc)
	assert.Equal(t, "active", info.Status)
	assert.Equal(t, int64(2), info.Generation, "resume keeps the generation")
	assert.Equal(t, exStart.Add(8*time.Minute), info.Deadline)

	require.NoError(t, e.w.terminate(svc))
	got = e.do(req{method: "GET", path: startPath + "/" + child})
	assert.Equal(t, "terminated", got.body["status"])
	assert.Equal(t, "parent_terminated", got.body["termination_reason"])
	assert.Equal(t, "2026-08-22T10:06:00.000Z", got.body["terminated_at"])
	assert.Error(t, e.w.terminate(svc))
	assert.Error(t, e.w.suspend(svc))
	assert.Error(t, e.w.resume(svc))
	_, ok := e.w.sessionInfo("nope")
	assert.False(t, ok)
	_, ok = e.w.edgeInfo("nope")
	assert.False(t, ok)
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

func TestListSessions(t *testing.T) {
	e := newCoordEnv(t)
	root := e.task("", map[string]any{"labels": []string{"dispatcher"}})
	e.clock.Advance(time.Second)
	svc := e.service("")
	e.clock.Advance(time.Second)
	c1 := e.task(root)
	e.clock.Advance(time.Second)
	c2 := e.task(root, map[string]any{"labels": []string{"reader"}})
	require.NoError(t, e.w.terminate(c1))
	other := e.do(req{method: "POST", path: startPath, body: `{"application_id":"app-other"}`, token: tok(e.token("app-other"))}).str("agent_session_id")

	ids := func(r resp) []string {
		require.Equal(t, 200, r.status, r.raw)
		var out []string
		for _, it := range r.body["items"].([]any) {
			out = append(out, it.(map[string]any)["agent_session_id"].(string))
		}
		return out
	}
	list := func(q string) resp { return e.do(req{method: "GET", path: startPath + q}) }
	assert.Equal(t, []string{other, c2, c1, svc, root}, ids(list("")), "newest first, every application")
	assert.Equal(t, []string{c2, svc, root}, ids(list("?status=active&application_id=app-reporter")))
	assert.Equal(t, []string{svc}, ids(list("?lifecycle=service")))
	assert.Equal(t, []string{c2}, ids(list("?label=reader")))
	page := list("?limit=2")
	assert.Equal(t, []string{other, c2}, ids(page))
	assert.Equal(t, c2, page.body["next_cursor"])
	page = list("?limit=2&cursor=" + c2)
	assert.Equal(t, []string{c1, svc}, ids(page))
	page = list("?limit=2&cursor=" + svc)
	assert.Equal(t, []string{root}, ids(page))
	assert.Nil(t, page.body["next_cursor"])
	assert.Equal(t, "1", list("?lifecycle=service").body["items"].([]any)[0].(map[string]any)["lease_generation"])
	for _, q := range []string{"?limit=0", "?limit=x", "?status=gone", "?lifecycle=daemon", "?label="} {
		assert.Equal(t, "invalid_query", list(q).code(), q)
	}
	assert.Equal(t, "invalid_cursor", list("?cursor=nope").code())

	children := func(id, q string) resp { return e.do(req{method: "GET", path: startPath + "/" + id + "/children" + q}) }
	assert.Equal(t, []string{c2, c1}, ids(children(root, "")))
	assert.Equal(t, []string{c2}, ids(children(root, "?limit=1")))
	assert.Empty(t, ids(children(svc, "")))
	assert.Equal(t, "session_not_found", children("nope", "").code())
}
