package caracaltest

import (
	"net/url"
	"strings"
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
		// 129 characters outside the BMP are 258 UTF-16 code units.
		assert.Equal(t, "invalid_query", e.do(req{method: "DELETE", path: startPath + "/" + id + "?reason=" + url.QueryEscape(strings.Repeat("\U0001D538", 129))}).code())
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
