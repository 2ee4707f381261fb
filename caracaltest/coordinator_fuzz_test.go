package caracaltest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// fuzzCoordinator posts body to path on a Coordinator mux and checks the
// answer: never a panic, a 2xx or a 4xx with a JSON error body. allow500 may
// accept a documented 500. Each input runs against a world of its own, built
// by setup, so that an input found failing fails again on its own.
func fuzzCoordinator(f *testing.F, seeds []string, setup func(e *coordEnv) (string, func([]byte) []byte), allow500 func(body []byte) bool) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	creds := newFuzzCreds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		e := newFuzzEnv(t, creds)
		target, rewrite := setup(e)
		mux := http.NewServeMux()
		for _, rt := range e.w.coordinatorRoutes() {
			mux.HandleFunc(rt.pattern, rt.handler)
		}
		if rewrite != nil {
			body = rewrite(body)
		}
		r := httptest.NewRequest("POST", target, bytes.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+e.tok)
		r.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, r)
		if rec.Code >= 200 && rec.Code < 300 {
			return
		}
		var got map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("status %d with a non-JSON body %q", rec.Code, rec.Body.String())
		}
		if code, _ := got["error"].(string); code == "" {
			t.Fatalf("status %d without an error code: %s", rec.Code, rec.Body.String())
		}
		if rec.Code >= 500 && (allow500 == nil || !allow500(body)) {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.String())
		}
		if rec.Code < 400 {
			t.Fatalf("status %d", rec.Code)
		}
	})
}

// fuzzCreds is a signing key and a lifecycle token of app-reporter, made
// once per run: generating and signing cost more than the rest of a world.
// The token names the authority record sid, which each world gets afresh.
type fuzzCreds struct {
	key      *signingKey
	sid, tok string
}

func newFuzzCreds(t testing.TB) fuzzCreds {
	key, err := newSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	c := fuzzCreds{key: key, sid: newID()}
	now := exStart
	c.tok, err = signES256(map[string]any{
		"iss": fuzzIssuer, "sub": "app-reporter", "aud": []string{fuzzIssuer},
		"exp": now.Unix() + 900, "iat": now.Unix(), "jti": newID(),
		"zone_id": "zone-acme", "client_id": "app-reporter", "scope": "agent:lifecycle",
		"sid": c.sid, "root_sid": c.sid, "use": "session", "sub_type": "application",
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const fuzzIssuer = "http://sts:8080"

// newFuzzEnv builds a new world for one fuzz input, signing with c.key and
// holding the record c.tok names (no loopback server is needed: the mux is
// driven directly).
func newFuzzEnv(t testing.TB, c fuzzCreds) *coordEnv {
	t.Helper()
	clock := NewFakeClock(exStart)
	w, err := newWorld(worldConfig{
		Clock: clock, Issuer: fuzzIssuer, Zone: "zone-acme",
		Apps:      []App{{ID: "app-reporter"}},
		Resources: []Resource{{Identifier: "resource://tickets", ID: "res-tickets", Scopes: []string{"tickets:read"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	key := *c.key
	w.keys = []*signingKey{&key}
	w.mu.Lock()
	rec := w.addRecord("application", "app-reporter", "", exStart.Add(900e9))
	delete(w.records, rec.id)
	rec.id = c.sid
	w.records[rec.id] = rec
	w.mu.Unlock()
	return &coordEnv{t: t, w: w, clock: clock, tok: c.tok}
}

// fuzzSession starts a session directly in the world.
func fuzzSession(e *coordEnv, lifecycle string) string {
	e.w.mu.Lock()
	defer e.w.mu.Unlock()
	now := e.w.now()
	s := &session{id: newID(), app: "app-reporter", lifecycle: lifecycle, status: "active",
		startedAt: now, labels: []string{}, metadata: []byte("{}")}
	if lifecycle == "service" {
		s.generation, s.deadline = 1, now.Add(e.w.lease)
	} else {
		s.ttl = defaultTaskTTL
	}
	e.w.addSession(s)
	return s.id
}

func FuzzStartBody(f *testing.F) {
	fuzzCoordinator(f, []string{
		`{"application_id":"app-reporter"}`,
		`{"application_id":"app-reporter","lifecycle":"service","labels":["a"," b "]}`,
		`{"application_id":"app-reporter","lifecycle":"service","ttl_seconds":5}`,
		`{"application_id":"app-reporter","parent_id":null,"metadata":{"task":"x"},"ttl_seconds":1e2}`,
		`{"application_id":"app-reporter","parent_id":"x","parent_authority":"none","inherit_parent_edge_id":"e"}`,
		`{"application_id":"app-reporter","labels":[1,null,{}],"ttl_seconds":-1}`,
		`{"application_id":"app-reporter","__proto__":{}}`,
		`[]`, `null`, `"x"`, `{`, ``, `{"application_id":"app-reporter","parent_id":""}`,
	}, func(*coordEnv) (string, func([]byte) []byte) { return "/zones/zone-acme/agents", nil }, func(body []byte) bool {
		// parent_id "" passes the checks and then breaks the foreign key.
		v, err := decodeJSON(body)
		m, ok := v.(map[string]any)
		return err == nil && ok && m["parent_id"] == ""
	})
}

func FuzzHeartbeatBody(f *testing.F) {
	fuzzCoordinator(f, []string{
		`{"status":"healthy","lease_generation":1}`,
		`{"lease_generation":2}`,
		`{"lease_generation":1,"service_id":"s","active_invocations":3,"metadata":{}}`,
		`{"lease_generation":1.5}`, `{"lease_generation":"1"}`, `{"lease_generation":1e400}`,
		`{"status":null}`, `[]`, `{}`, `{"lease_generation":-9223372036854775809}`,
	}, func(e *coordEnv) (string, func([]byte) []byte) {
		return "/zones/zone-acme/agents/" + fuzzSession(e, "service") + "/heartbeat", nil
	}, nil)
}

func FuzzDelegationBody(f *testing.F) {
	fuzzCoordinator(f, []string{
		`{"source_session_id":"S","target_session_id":"T","issuer_application_id":"app-reporter","receiver_application_id":"app-reporter","scopes":["tickets:read"],"resource_id":"resource://tickets","ttl_seconds":600}`,
		`{"source_session_id":"S","target_session_id":"T","issuer_application_id":"app-reporter","receiver_application_id":"app-reporter","constraints":{"resources":["resource://tickets"],"max_hops":2,"budget":3},"expires_at":"2026-08-22T11:00:00Z"}`,
		`{"source_session_id":"S","target_session_id":"T","issuer_application_id":"app-reporter","receiver_application_id":"app-reporter","constraints_json":{"max_depth":2},"constraints":{"max_hops":3},"ttl_seconds":5}`,
		`{"constraints":[],"constraints_json":null}`,
		`{"source_session_id":"S","target_session_id":"S","issuer_application_id":"x","receiver_application_id":"y","expires_at":"2026-08-22T09:00:00.000Z","resource_id":null}`,
		`{"constraints":{"resources":[1],"policy_approved":1,"broad_reason":"","expires_at":5}}`,
	}, func(e *coordEnv) (string, func([]byte) []byte) {
		src := []byte(`"` + fuzzSession(e, "task") + `"`)
		dst := []byte(`"` + fuzzSession(e, "task") + `"`)
		// "S" and "T" in an input stand for two live sessions.
		return "/zones/zone-acme/delegations", func(b []byte) []byte {
			b = bytes.ReplaceAll(b, []byte(`"S"`), src)
			return bytes.ReplaceAll(b, []byte(`"T"`), dst)
		}
	}, nil)
}

func signES256(claims map[string]any, k *signingKey) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims(claims))
	tok.Header["kid"] = k.kid
	return tok.SignedString(k.private)
}
