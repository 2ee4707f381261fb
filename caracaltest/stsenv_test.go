package caracaltest

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/wire"
)

// The worked examples' setup (PROTOCOL §10).
const (
	exZone     = "zone-acme"
	exApp      = "app-reporter"
	exSecret   = "s3cr3t"
	exResource = "resource://tickets"
	exResID    = "res-tickets"
	exIssuer   = "http://sts:8080"
)

// exStart is 2026-08-22T10:00:00Z, the examples' clock start.
var exStart = time.Unix(1787392800, 0).UTC()

// seenRequest is what the in-process upstream received.
type seenRequest struct {
	Method, Path, RawQuery, Host string
	Header                       http.Header
	Body                         string
}

// stsEnv is an STS and a Gateway over loopback HTTP on one world, with
// sessions and edges created directly in the world's tables.
type stsEnv struct {
	w     *world
	clock *FakeClock
	sts   *httptest.Server
	gw    *httptest.Server

	mu   sync.Mutex
	seen []seenRequest
	// reply, if set, answers upstream requests instead of the default JSON.
	reply http.HandlerFunc
}

// exampleConfig is the world of PROTOCOL §10 plus the write/delete scopes and
// the roles the default stack declares.
func exampleConfig() worldConfig {
	return worldConfig{
		Issuer: exIssuer,
		Zone:   exZone,
		Apps:   []App{{ID: exApp, Secret: exSecret}, {ID: "app-other", Secret: "other-secret"}},
		Resources: []Resource{
			{Identifier: exResource, ID: exResID, Scopes: []string{"tickets:read", "tickets:write", "tickets:delete"}},
			{Identifier: "resource://plain", Scopes: []string{"plain:read"}},
		},
		Policy: zonePolicy{
			Grants: map[string]resourceGrant{
				exResource: {Application: exApp, Roles: map[string][]string{
					"reader": {"tickets:read"},
					"writer": {"tickets:read", "tickets:write"},
					"admin":  {"tickets:read", "tickets:write", "tickets:delete"},
				}},
				"resource://plain": {Application: exApp, Roles: map[string][]string{"reader": {"plain:read"}}},
			},
			Risk:          []riskTag{{Scope: "tickets:write", Tier: "high"}},
			ApprovalTiers: []ApprovalTier{{Tier: "high", Approver: "operator"}},
		},
	}
}

func newSTSEnv(t *testing.T, mutate ...func(*worldConfig)) *stsEnv {
	t.Helper()
	env := &stsEnv{clock: NewFakeClock(exStart)}
	cfg := exampleConfig()
	cfg.Clock = env.clock
	cfg.Resources[0].Upstream = http.HandlerFunc(env.upstream)
	for _, m := range mutate {
		m(&cfg)
	}
	w, err := newWorld(cfg)
	require.NoError(t, err)
	env.w = w
	mux := http.NewServeMux()
	for _, r := range w.stsRoutes() {
		mux.HandleFunc(r.pattern, r.handler)
	}
	env.sts = httptest.NewServer(mux)
	t.Cleanup(env.sts.Close)
	routes := w.gatewayRoutes()
	require.Len(t, routes, 1)
	require.Equal(t, "/", routes[0].pattern)
	// Served without a ServeMux: a mux would answer dot segments with a
	// redirect before the Gateway's own traversal check.
	env.gw = httptest.NewServer(routes[0].handler)
	t.Cleanup(env.gw.Close)
	return env
}

func (env *stsEnv) upstream(rw http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	env.mu.Lock()
	env.seen = append(env.seen, seenRequest{
		Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Host: r.Host, Header: r.Header.Clone(), Body: string(b),
	})
	reply := env.reply
	env.mu.Unlock()
	if reply != nil {
		reply(rw, r)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(rw, `{"id":42,"title":"printer on fire"}`)
}

func (env *stsEnv) lastSeen(t *testing.T) seenRequest {
	env.mu.Lock()
	defer env.mu.Unlock()
	require.NotEmpty(t, env.seen, "the upstream was not called")
	return env.seen[len(env.seen)-1]
}

func (env *stsEnv) seenCount() int {
	env.mu.Lock()
	defer env.mu.Unlock()
	return len(env.seen)
}

// baseForm is the authentication part of every SDK exchange.
func baseForm(kv ...string) url.Values {
	f := url.Values{
		"grant_type":     {wire.GrantTypeTokenExchange},
		"zone_id":        {exZone},
		"application_id": {exApp},
		"client_secret":  {exSecret},
	}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Add(kv[i], kv[i+1])
	}
	return f
}

func lifecycleForm() url.Values {
	return baseForm("scope", wire.ScopeLifecycle, "resource", exResource)
}

func mintForm(s *session, e *edge, scope string) url.Values {
	return baseForm("scope", scope, "resource", exResource, "agent_session_id", s.id, "delegation_edge_id", e.id)
}

// postRaw sends a token request with an explicit body and content type.
func (env *stsEnv) postRaw(t *testing.T, body, contentType string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, env.sts.URL+"/oauth/2/token", strings.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (env *stsEnv) post(t *testing.T, f url.Values, hdr ...string) *http.Response {
	t.Helper()
	return env.postRaw(t, f.Encode(), "application/x-www-form-urlencoded", hdr...)
}

// token posts f and requires a 200, returning the token body.
func (env *stsEnv) token(t *testing.T, f url.Values) wire.TokenResponse {
	t.Helper()
	resp := env.post(t, f)
	body := readBody(t, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	var tr wire.TokenResponse
	require.NoError(t, json.Unmarshal([]byte(body), &tr))
	return tr
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// errBody reads an error body and checks its request id against the
// X-Request-Id header.
func errBody(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(readBody(t, resp)), &m))
	require.NotEmpty(t, resp.Header.Get(wire.HeaderRequestID))
	require.Equal(t, resp.Header.Get(wire.HeaderRequestID), m["requestId"])
	return m
}

// requireError checks status, code and description of an error answer.
func requireError(t *testing.T, resp *http.Response, status int, code, desc string) map[string]any {
	t.Helper()
	m := errBody(t, resp)
	require.Equal(t, status, resp.StatusCode, m)
	require.Equal(t, code, m["error"])
	if desc != "" {
		require.Equal(t, desc, m["error_description"])
	}
	return m
}

// claims decodes a JWT payload into a generic map.
func claims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	return m
}

// header decodes a JWT header.
func jwtHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	return m
}

// session inserts a live task session of app with labels.
func (env *stsEnv) session(app string, labels ...string) *session {
	env.w.mu.Lock()
	defer env.w.mu.Unlock()
	s := &session{
		id: newID(), app: app, lifecycle: wire.LifecycleTask, labels: labels, status: wire.StatusActive,
		ttl: time.Hour, startedAt: env.clock.Now(),
	}
	env.w.addSession(s) // indexed as the Coordinator indexes the sessions it starts
	return s
}

// edge inserts an active edge src → dst for scopes, scoped by cons, expiring
// after ttl.
func (env *stsEnv) edge(src, dst *session, parent *edge, scopes []string, cons wire.Constraints, ttl time.Duration) *edge {
	env.w.mu.Lock()
	defer env.w.mu.Unlock()
	e := &edge{
		id: newID(), source: src.id, target: dst.id, issuer: src.app, receiver: dst.app, scopes: scopes,
		constraints: cons, status: wire.StatusActive, expiresAt: env.clock.Now().Add(ttl), createdAt: env.clock.Now(),
	}
	if parent != nil {
		e.parentEdge = parent.id
	}
	env.w.addEdge(e)
	return e
}

// chain builds the example's root → reader child narrowing (600 s edge,
// constraints.resources = [resource://tickets]).
func (env *stsEnv) chain(labels ...string) (root, child *session, e *edge) {
	if len(labels) == 0 {
		labels = []string{"reader"}
	}
	root = env.session(exApp, "dispatcher")
	child = env.session(exApp, labels...)
	e = env.edge(root, child, nil, []string{"tickets:read", "tickets:write", "tickets:delete"},
		wire.Constraints{Resources: []string{exResource}, TTLSeconds: 600}, 600*time.Second)
	return root, child, e
}

// gateway sends a request to the Gateway.
func (env *stsEnv) gateway(t *testing.T, method, path, token string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, env.gw.URL+path, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set(wire.HeaderResource, exResource)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}
