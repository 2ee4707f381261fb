package caracaltest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const startPath = "/zones/zone-acme/agents"

func TestCoordinatorAuthentication(t *testing.T) {
	e := newCoordEnv(t)
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	claims := func(mod func(jwt.MapClaims)) *string { return tok(e.token("app-reporter", mod)) }
	revoked := e.claims("app-reporter")
	e.w.mu.Lock()
	e.w.revokeRecord(revoked["sid"].(string), "test")
	e.w.mu.Unlock()

	for _, tc := range []struct {
		name   string
		header string // full Authorization value; "" = none
		token  *string
		path   string
		status int
		code   string
	}{
		{name: "no header", token: tok(""), status: 401, code: "missing_token"},
		{name: "lowercase scheme", header: "bearer " + e.tok, status: 401, code: "missing_token"},
		{name: "two spaces trimmed", header: "Bearer  " + e.tok, status: 201},
		{name: "empty token", header: "Bearer    ", status: 401, code: "missing_token"},
		{name: "too long", header: "Bearer " + strings.Repeat("a", 4097), status: 401, code: "missing_token"},
		{name: "4096 chars is not too long", header: "Bearer " + strings.Repeat("a", 4096), status: 401, code: "invalid_token"},
		{name: "not a jwt", header: "Bearer abc.def.ghi", status: 401, code: "invalid_token"},
		{name: "zone claim bad", token: claims(func(c jwt.MapClaims) { c["zone_id"] = "zone acme" }), status: 401, code: "invalid_token"},
		{name: "zone claim missing", token: claims(func(c jwt.MapClaims) { delete(c, "zone_id") }), status: 401, code: "invalid_token"},
		{name: "other zone", token: claims(func(c jwt.MapClaims) { c["zone_id"] = "zone-other" }), status: 401, code: "invalid_token"},
		{name: "foreign key", token: tok(e.sign(e.claims("app-reporter"), e.w.keys[0].kid, otherKey)), status: 401, code: "invalid_token"},
		{name: "unknown kid", token: tok(e.sign(e.claims("app-reporter"), "nope", e.w.keys[0].private)), status: 401, code: "invalid_token"},
		{name: "wrong iss", token: claims(func(c jwt.MapClaims) { c["iss"] = "http://evil" }), status: 401, code: "invalid_token"},
		{name: "wrong aud", token: claims(func(c jwt.MapClaims) { c["aud"] = []string{"http://gw"} }), status: 401, code: "invalid_token"},
		{name: "expired past leeway", token: claims(func(c jwt.MapClaims) { c["exp"] = exStart.Add(-61 * time.Second).Unix() }), status: 401, code: "invalid_token"},
		{name: "expired within leeway", token: claims(func(c jwt.MapClaims) { c["exp"] = exStart.Add(-59 * time.Second).Unix() }), status: 201},
		{name: "nbf in future", token: claims(func(c jwt.MapClaims) { c["nbf"] = exStart.Add(2 * time.Minute).Unix() }), status: 401, code: "invalid_token"},
		{name: "gateway mandate", token: claims(func(c jwt.MapClaims) { c["use"] = "gateway" }), status: 401, code: "invalid_token"},
		{name: "resource token", token: claims(func(c jwt.MapClaims) { c["use"] = "resource" }), status: 401, code: "invalid_token"},
		{name: "no sub", token: claims(func(c jwt.MapClaims) { delete(c, "sub") }), status: 401, code: "invalid_token"},
		{name: "no lifecycle scope", token: claims(func(c jwt.MapClaims) { c["scope"] = "tickets:read" }), status: 403, code: "missing_scope"},
		{name: "zone mismatch", path: "/zones/zone-other/agents", status: 403, code: "zone_mismatch"},
		{name: "no client_id", token: claims(func(c jwt.MapClaims) { delete(c, "client_id") }), status: 401, code: "invalid_token"},
		{name: "unknown app", token: claims(func(c jwt.MapClaims) { c["client_id"] = "app-ghost" }), status: 401, code: "identity_revoked"},
		{name: "revoked record", token: tok(e.sign(revoked, e.w.keys[0].kid, e.w.keys[0].private)), status: 401, code: "identity_revoked"},
		{name: "unknown record", token: claims(func(c jwt.MapClaims) { c["sid"] = "0198-nope" }), status: 401, code: "identity_revoked"},
		{name: "no sid passes auth", token: claims(func(c jwt.MapClaims) { delete(c, "sid") }), status: 400, code: "subject_session_id_required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := req{method: "POST", path: startPath, body: `{"application_id":"app-reporter"}`, token: tc.token}
			if tc.path != "" {
				r.path = tc.path
			}
			if tc.header != "" {
				r.token = tok("")
				r.header = map[string]string{"Authorization": tc.header}
			}
			got := e.do(r)
			require.Equal(t, tc.status, got.status, got.raw)
			if tc.code != "" {
				assert.Equal(t, map[string]any{"error": tc.code}, got.body)
			}
		})
	}

	t.Run("record expiry ends the token at exp", func(t *testing.T) {
		tk := e.token("app-reporter")
		defer e.clock.Set(e.clock.Now())
		e.clock.Advance(900 * time.Second)
		got := e.do(req{method: "POST", path: startPath, body: `{"application_id":"app-reporter"}`, token: &tk})
		assert.Equal(t, 401, got.status)
		assert.Equal(t, "identity_revoked", got.code())
	})
	t.Run("health needs no token", func(t *testing.T) {
		got := e.do(req{method: "GET", path: "/health", token: tok("")})
		assert.Equal(t, 200, got.status)
		assert.Equal(t, map[string]any{"ok": true}, got.body)
	})
	t.Run("unknown route after auth", func(t *testing.T) {
		got := e.do(req{method: "POST", path: "/v1/begin", token: tok("")})
		assert.Equal(t, 401, got.status)
		got = e.do(req{method: "POST", path: "/v1/begin"})
		assert.Equal(t, 404, got.status)
		assert.Equal(t, "Not Found", got.body["error"])
		assert.Equal(t, "Route POST:/v1/begin not found", got.body["message"])
	})
}

func TestCoordinatorBodyAndParams(t *testing.T) {
	e := newCoordEnv(t)
	task := e.task("")
	shape4 := func(t *testing.T, r resp, status int) {
		t.Helper()
		require.Equal(t, status, r.status, r.raw)
		assert.Equal(t, "internal_error", r.code())
		assert.Equal(t, "The service failed to process the request", r.body["error_description"])
		assert.NotEmpty(t, r.body["requestId"])
	}
	for _, tc := range []struct {
		name   string
		method string
		path   string
		ct     string
		body   string
		check  func(t *testing.T, r resp)
	}{
		{"json header on empty task delete", "DELETE", startPath + "/" + task, "application/json", "",
			func(t *testing.T, r resp) { shape4(t, r, 400) }},
		{"json header on empty lease", "POST", startPath + "/" + task + "/lease", "application/json", "",
			func(t *testing.T, r resp) { shape4(t, r, 400) }},
		{"json header on empty revoke", "PATCH", "/zones/zone-acme/delegations/x/revoke", "application/json; charset=utf-8", "",
			func(t *testing.T, r resp) { shape4(t, r, 400) }},
		{"malformed json", "POST", startPath, "application/json", `{"application_id":`,
			func(t *testing.T, r resp) { shape4(t, r, 400) }},
		{"trailing garbage", "POST", startPath, "application/json", `{} {}`,
			func(t *testing.T, r resp) { shape4(t, r, 400) }},
		{"prototype poisoning", "POST", startPath, "application/json", `{"application_id":"app-reporter","__proto__":{"x":1}}`,
			func(t *testing.T, r resp) { shape4(t, r, 400) }},
		{"unsupported media type", "POST", startPath, "application/xml", `<a/>`,
			func(t *testing.T, r resp) { shape4(t, r, 415) }},
		{"body without content type", "POST", startPath, "", `{"application_id":"app-reporter"}`,
			func(t *testing.T, r resp) { shape4(t, r, 415) }},
		{"too large", "POST", startPath, "application/json", `{"metadata":{"x":"` + strings.Repeat("a", 256<<10) + `"}}`,
			func(t *testing.T, r resp) { shape4(t, r, 413) }},
		{"array body", "POST", startPath, "application/json", `[]`, func(t *testing.T, r resp) {
			require.Equal(t, 400, r.status)
			assert.Equal(t, "invalid_body", r.code())
			assert.Equal(t, []any{map[string]any{"path": []any{}, "message": "Expected object, received array"}},
				r.body["details"].(map[string]any)["issues"])
		}},
		{"null body", "POST", startPath, "application/json", `null`, func(t *testing.T, r resp) {
			require.Equal(t, 400, r.status)
			assert.Equal(t, "invalid_body", r.code())
		}},
		{"text body", "POST", startPath, "text/plain", `hello`, func(t *testing.T, r resp) {
			require.Equal(t, 400, r.status)
			assert.Equal(t, "invalid_body", r.code())
		}},
		{"no body on start", "POST", startPath, "", "", func(t *testing.T, r resp) {
			require.Equal(t, 400, r.status)
			assert.Equal(t, "invalid_body", r.code())
		}},
		{"bad path id", "POST", startPath + "/a%20b/lease", "", "", func(t *testing.T, r resp) {
			require.Equal(t, 400, r.status)
			assert.Equal(t, map[string]any{"error": "invalid_params"}, r.body)
		}},
		{"path id too long", "DELETE", startPath + "/" + strings.Repeat("a", 129), "", "", func(t *testing.T, r resp) {
			assert.Equal(t, map[string]any{"error": "invalid_params"}, r.body)
		}},
		{"bad inbound sid", "GET", "/zones/zone-acme/delegations/inbound/a%2Fb/e1", "", "", func(t *testing.T, r resp) {
			assert.Equal(t, map[string]any{"error": "invalid_params"}, r.body)
		}},
		{"json header on GET is ignored", "GET", startPath + "/" + task, "application/json", "", func(t *testing.T, r resp) {
			assert.Equal(t, 200, r.status)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := req{method: tc.method, path: tc.path}
			if tc.ct != "" {
				r.header = map[string]string{"Content-Type": tc.ct}
			}
			got := e.doRaw(r, tc.body)
			tc.check(t, got)
		})
	}
	t.Run("request id", func(t *testing.T) {
		got := e.do(req{method: "POST", path: startPath, body: `{}`, header: map[string]string{"X-Request-Id": "req-1"}})
		assert.Equal(t, "req-1", got.body["requestId"])
		assert.Empty(t, got.header.Get("X-Request-Id"), "the Coordinator does not echo the request id")
		got = e.do(req{method: "POST", path: startPath, body: `{}`, header: map[string]string{"X-Request-Id": "bad id"}})
		assert.Regexp(t, `^[0-9a-f-]{36}$`, got.body["requestId"])
	})
}

func TestStartSessionValidation(t *testing.T) {
	issue := func(path []any, msg string) func(t *testing.T, r resp) {
		return func(t *testing.T, r resp) {
			t.Helper()
			require.Equal(t, 400, r.status, r.raw)
			assert.Equal(t, "invalid_body", r.code())
			assert.Equal(t, "Request body failed validation", r.body["error_description"])
			assert.NotEmpty(t, r.body["requestId"])
			issues := r.body["details"].(map[string]any)["issues"].([]any)
			require.NotEmpty(t, issues)
			first := issues[0].(map[string]any)
			assert.Equal(t, path, first["path"])
			if msg != "" {
				assert.Equal(t, msg, first["message"])
			}
		}
	}
	for _, tc := range []struct {
		body  string
		check func(t *testing.T, r resp)
	}{
		{`{}`, issue([]any{"application_id"}, "Required")},
		{`{"application_id":""}`, issue([]any{"application_id"}, "String must contain at least 1 character(s)")},
		{`{"application_id":7}`, issue([]any{"application_id"}, "Expected string, received number")},
		{`{"application_id":"app-reporter","subject_session_id":""}`, issue([]any{"subject_session_id"}, "")},
		{`{"application_id":"app-reporter","parent_id":5}`, issue([]any{"parent_id"}, "")},
		{`{"application_id":"app-reporter","lifecycle":"daemon"}`, issue([]any{"lifecycle"}, "Invalid enum value. Expected 'task' | 'service', received 'daemon'")},
		{`{"application_id":"app-reporter","labels":"x"}`, issue([]any{"labels"}, "Expected array, received string")},
		{`{"application_id":"app-reporter","labels":["  "]}`, issue([]any{"labels", "0"}, "String must contain at least 1 character(s)")},
		{`{"application_id":"app-reporter","labels":["` + strings.Repeat("x", 65) + `"]}`, issue([]any{"labels", "0"}, "String must contain at most 64 character(s)")},
		{`{"application_id":"app-reporter","labels":[` + strings.Repeat(`"a",`, 32) + `"a"]}`, issue([]any{"labels"}, "Array must contain at most 32 element(s)")},
		// zod counts UTF-16 code units: 33 characters outside the BMP are 66.
		{`{"application_id":"app-reporter","labels":["` + strings.Repeat("\U0001D538", 33) + `"]}`, issue([]any{"labels", "0"}, "String must contain at most 64 character(s)")},
		{`{"application_id":"app-reporter","ttl_seconds":0}`, issue([]any{"ttl_seconds"}, "Number must be greater than or equal to 1")},
		{`{"application_id":"app-reporter","ttl_seconds":86401}`, issue([]any{"ttl_seconds"}, "Number must be less than or equal to 86400")},
		{`{"application_id":"app-reporter","ttl_seconds":1.5}`, issue([]any{"ttl_seconds"}, "Expected integer, received float")},
		{`{"application_id":"app-reporter","ttl_seconds":"60"}`, issue([]any{"ttl_seconds"}, "Expected number, received string")},
		{`{"application_id":"app-reporter","parent_authority":"all"}`, issue([]any{"parent_authority"}, "")},
		{`{"application_id":"app-reporter","inherit_parent_edge_id":""}`, issue([]any{"inherit_parent_edge_id"}, "")},
		{`{"application_id":"app-reporter","metadata":[1]}`, issue([]any{"metadata"}, "Expected object, received array")},
		{`{"application_id":"app-reporter","lifecycle":"service","ttl_seconds":60}`, issue([]any{"ttl_seconds"}, "service sessions are lease-renewed and do not accept ttl_seconds")},
	} {
		t.Run(tc.body, func(t *testing.T) {
			e := newCoordEnv(t)
			tc.check(t, e.do(req{method: "POST", path: startPath, body: tc.body}))
		})
	}
}

func TestStartSessionRules(t *testing.T) {
	type env = coordEnv
	for _, tc := range []struct {
		name   string
		opts   []coordOpt
		setup  func(e *env) (body map[string]any, token *string)
		status int
		code   string
	}{
		{name: "subject required without sid", setup: func(e *env) (map[string]any, *string) {
			return map[string]any{}, tok(e.token("app-reporter", func(c jwt.MapClaims) { delete(c, "sid") }))
		}, status: 400, code: "subject_session_id_required"},
		{name: "application ownership", setup: func(e *env) (map[string]any, *string) {
			return map[string]any{"application_id": "app-other"}, nil
		}, status: 403, code: "application_ownership_required"},
		{name: "spawn_for scope lets an unknown app reach application_not_found", setup: func(e *env) (map[string]any, *string) {
			return map[string]any{"application_id": "app-ghost"}, tok(e.token("app-reporter", func(c jwt.MapClaims) {
				c["scope"] = "agent:lifecycle coordinator.spawn_for:app-ghost"
			}))
		}, status: 404, code: "application_not_found"},
		{name: "dcr cannot host service", opts: []coordOpt{withApps(App{ID: "app-dcr", DCR: true})},
			setup: func(e *env) (map[string]any, *string) {
				return map[string]any{"application_id": "app-dcr", "lifecycle": "service"}, tok(e.token("app-dcr"))
			}, status: 409, code: "dcr_application_cannot_host_service"},
		{name: "dcr cannot be child", opts: []coordOpt{withApps(App{ID: "app-dcr", DCR: true})},
			setup: func(e *env) (map[string]any, *string) {
				return map[string]any{"application_id": "app-dcr", "parent_id": "p"}, tok(e.token("app-dcr"))
			}, status: 409, code: "dcr_application_cannot_be_child"},
		{name: "subject record unknown", setup: func(e *env) (map[string]any, *string) {
			return map[string]any{"subject_session_id": "nope"}, nil
		}, status: 404, code: "session_not_found"},
		{name: "zone limit", opts: []coordOpt{withLimits(Limits{SessionsPerZone: 1})}, setup: func(e *env) (map[string]any, *string) {
			e.task("")
			return map[string]any{}, nil
		}, status: 429, code: "session_zone_limit_exceeded"},
		{name: "dcr already bound", opts: []coordOpt{withApps(App{ID: "app-dcr", DCR: true})},
			setup: func(e *env) (map[string]any, *string) {
				t := tok(e.token("app-dcr"))
				r := e.do(req{method: "POST", path: startPath, body: `{"application_id":"app-dcr"}`, token: t})
				require.Equal(e.t, 201, r.status)
				return map[string]any{"application_id": "app-dcr"}, t
			}, status: 409, code: "dcr_application_already_bound"},
		{name: "app limit", opts: []coordOpt{withLimits(Limits{SessionsPerApp: 1})}, setup: func(e *env) (map[string]any, *string) {
			e.task("")
			return map[string]any{}, nil
		}, status: 429, code: "session_limit_exceeded"},
		{name: "parent unknown", setup: func(e *env) (map[string]any, *string) {
			return map[string]any{"parent_id": "nope"}, nil
		}, status: 404, code: "parent_not_found"},
		{name: "parent suspended", setup: func(e *env) (map[string]any, *string) {
			p := e.service("")
			require.NoError(e.t, e.w.suspend(p))
			return map[string]any{"parent_id": p}, nil
		}, status: 404, code: "parent_not_found"},
		{name: "parent dcr", opts: []coordOpt{withApps(App{ID: "app-dcr", DCR: true})},
			setup: func(e *env) (map[string]any, *string) {
				r := e.do(req{method: "POST", path: startPath, body: `{"application_id":"app-dcr"}`, token: tok(e.token("app-dcr"))})
				require.Equal(e.t, 201, r.status)
				return map[string]any{"parent_id": r.str("agent_session_id")}, nil
			}, status: 409, code: "dcr_application_cannot_start_child"},
		{name: "task parent cannot start service", setup: func(e *env) (map[string]any, *string) {
			return map[string]any{"parent_id": e.task(""), "lifecycle": "service"}, nil
		}, status: 409, code: "task_session_cannot_start_service"},
		{name: "parent ownership", setup: func(e *env) (map[string]any, *string) {
			r := e.do(req{method: "POST", path: startPath, body: `{"application_id":"app-other"}`, token: tok(e.token("app-other"))})
			require.Equal(e.t, 201, r.status)
			return map[string]any{"parent_id": r.str("agent_session_id")}, nil
		}, status: 403, code: "parent_ownership_required"},
		{name: "children limit", opts: []coordOpt{withLimits(Limits{ChildrenPerParent: 2})}, setup: func(e *env) (map[string]any, *string) {
			p := e.task("")
			e.task(p)
			e.task(p)
			return map[string]any{"parent_id": p}, nil
		}, status: 429, code: "session_children_limit_exceeded"},
		{name: "depth limit", opts: []coordOpt{withLimits(Limits{MaxDepth: 2})}, setup: func(e *env) (map[string]any, *string) {
			return map[string]any{"parent_id": e.task(e.task(e.task("")))}, nil
		}, status: 429, code: "session_depth_limit_exceeded"},
		{name: "inherit: parent edge revoked", setup: func(e *env) (map[string]any, *string) {
			root := e.task("")
			p := e.task(root)
			edge := e.edge(root, p, nil)
			require.Equal(e.t, 200, e.do(req{method: "PATCH", path: "/zones/zone-acme/delegations/" + edge + "/revoke"}).status)
			e.tok = e.token("app-reporter") // the revoke revoked the spawn token's record
			return map[string]any{"parent_id": e.task(""), "inherit_parent_edge_id": edge}, nil
		}, status: 409, code: "inherit_parent_edge_not_active"},
		{name: "inherit: parent edge expired", setup: func(e *env) (map[string]any, *string) {
			root := e.task("", map[string]any{"ttl_seconds": 7200})
			p := e.task(root, map[string]any{"ttl_seconds": 7200})
			e.edge(root, p, map[string]any{"ttl_seconds": 60})
			e.clock.Advance(61 * time.Second)
			e.tok = e.token("app-reporter")
			return map[string]any{"parent_id": p}, nil
		}, status: 409, code: "inherit_parent_edge_not_active"},
		{name: "inherit: explicit id not an inbound edge", setup: func(e *env) (map[string]any, *string) {
			return map[string]any{"parent_id": e.task(""), "inherit_parent_edge_id": "edge-x"}, nil
		}, status: 409, code: "inherit_parent_edge_not_active"},
		{name: "inherit: ambiguous", setup: func(e *env) (map[string]any, *string) {
			a, b := e.task(""), e.task("")
			p := e.task(a)
			e.edge(a, p, nil)
			e.edge(b, p, nil)
			return map[string]any{"parent_id": p}, nil
		}, status: 409, code: "inherit_parent_edge_ambiguous"},
		{name: "empty parent_id violates the foreign key", setup: func(e *env) (map[string]any, *string) {
			return map[string]any{"parent_id": ""}, nil
		}, status: 500, code: "internal_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCoordEnv(t, tc.opts...)
			body, token := tc.setup(e)
			if _, ok := body["application_id"]; !ok {
				body["application_id"] = "app-reporter"
			}
			got := e.do(req{method: "POST", path: startPath, body: mustJSONString(t, body), token: token})
			require.Equal(t, tc.status, got.status, got.raw)
			assert.Equal(t, tc.code, got.code())
			if tc.code == "session_not_found" {
				assert.Contains(t, got.body["detail"], "subject_session_id must reference an STS authority_records.id")
			}
		})
	}
}

func TestStartSessionSuccess(t *testing.T) {
	e := newCoordEnv(t)
	t.Run("task defaults", func(t *testing.T) {
		r := e.start(map[string]any{"labels": []string{" dispatcher "}, "metadata": map[string]any{"task": "x"}})
		assert.Equal(t, []any{"dispatcher"}, r.body["labels"])
		assert.Equal(t, float64(3600), r.body["ttl_seconds"])
		assert.Equal(t, float64(0), r.body["lease_generation"])
		assert.Equal(t, float64(0), r.body["depth"])
		assert.Nil(t, r.body["parent_id"])
		assert.Nil(t, r.body["delegation_edge_id"])
		assert.Nil(t, r.body["heartbeat_deadline_at"])
		assert.NotContains(t, r.body, "metadata")
		assert.Equal(t, "2026-08-22T10:00:00.000Z", r.body["started_at"])
		assert.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-7`, r.body["agent_session_id"])
	})
	t.Run("subject defaults to the token sid", func(t *testing.T) {
		c := e.claims("app-reporter")
		tk := e.sign(c, e.w.keys[0].kid, e.w.keys[0].private)
		r := e.do(req{method: "POST", path: startPath, body: `{"application_id":"app-reporter"}`, token: &tk})
		assert.Equal(t, c["sid"], r.body["subject_authority_record_id"])
	})
	t.Run("explicit subject", func(t *testing.T) {
		other := e.claims("app-reporter")["sid"]
		r := e.start(map[string]any{"subject_session_id": other})
		assert.Equal(t, other, r.body["subject_authority_record_id"])
	})
	t.Run("service under service", func(t *testing.T) {
		p := e.service("")
		r := e.start(map[string]any{"lifecycle": "service", "parent_id": p})
		assert.Equal(t, float64(1), r.body["depth"])
		assert.Equal(t, p, r.body["parent_id"])
		assert.Equal(t, float64(1), r.body["lease_generation"])
	})
	t.Run("inherit mirrors the parent's edge", func(t *testing.T) {
		root := e.task("")
		p := e.task(root)
		pe := e.edge(root, p, map[string]any{"constraints": map[string]any{"max_hops": 2}})
		r := e.start(map[string]any{"parent_id": p, "labels": []string{"reader"}})
		mirror := r.str("delegation_edge_id")
		require.NotEmpty(t, mirror)
		info, ok := e.w.edgeInfo(mirror)
		require.True(t, ok)
		parentInfo, _ := e.w.edgeInfo(pe)
		assert.Equal(t, pe, info.ParentEdge)
		assert.Equal(t, p, info.Source)
		assert.Equal(t, r.str("agent_session_id"), info.Target)
		assert.Equal(t, parentInfo.ExpiresAt, info.ExpiresAt)
		assert.Equal(t, []string{"tickets:read"}, info.Scopes)
		assert.Equal(t, 2, info.MaxHops)
		assert.Equal(t, "res-tickets", info.ResourceID)
		e.w.mu.Lock()
		path, ok := e.w.edgePath(mirror)
		e.w.mu.Unlock()
		require.True(t, ok)
		assert.Len(t, path, 2)
		// none does not mirror
		r = e.start(map[string]any{"parent_id": p, "parent_authority": "none"})
		assert.Nil(t, r.body["delegation_edge_id"])
		// a root has nothing to inherit
		r = e.start(map[string]any{"parent_id": root})
		assert.Nil(t, r.body["delegation_edge_id"])
	})
	t.Run("inherit picks the receiver's edge by id", func(t *testing.T) {
		a, b := e.task(""), e.task("")
		p := e.task(a)
		e.edge(a, p, nil)
		eb := e.edge(b, p, nil)
		r := e.start(map[string]any{"parent_id": p, "inherit_parent_edge_id": eb})
		info, _ := e.w.edgeInfo(r.str("delegation_edge_id"))
		assert.Equal(t, eb, info.ParentEdge)
	})
	t.Run("expired tasks free capacity", func(t *testing.T) {
		e := newCoordEnv(t, withLimits(Limits{SessionsPerApp: 1}))
		e.task("", map[string]any{"ttl_seconds": 5})
		e.clock.Advance(6 * time.Second)
		e.task("")
	})
}
