package caracaltest

import (
	"crypto/ecdsa"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// coordEnv is a world with only the Coordinator mounted on a loopback
// server, plus token minting the way the STS does it.
type coordEnv struct {
	t     testing.TB
	w     *world
	clock *FakeClock
	url   string
	tok   string // a lifecycle token of app-reporter
}

type coordOpt func(*worldConfig)

func withLimits(l Limits) coordOpt { return func(c *worldConfig) { c.Limits = l } }

func withResources(res ...Resource) coordOpt { return func(c *worldConfig) { c.Resources = res } }

func withApps(apps ...App) coordOpt {
	return func(c *worldConfig) { c.Apps = append(c.Apps, apps...) }
}

// newCoordEnv builds the §10 setup: zone-acme, app-reporter, resource
// resource://tickets (res-tickets) with tickets:read (plus tickets:write and
// a second resource for narrowing tests).
func newCoordEnv(t testing.TB, opts ...coordOpt) *coordEnv {
	t.Helper()
	clock := NewFakeClock(exStart)
	cfg := worldConfig{
		Clock:  clock,
		Issuer: exIssuer,
		Zone:   exZone,
		Apps:   []App{{ID: exApp, Secret: exSecret}, {ID: "app-other", Secret: "x"}},
		Resources: []Resource{
			{Identifier: "resource://tickets", ID: "res-tickets", Scopes: []string{"tickets:read", "tickets:write"}},
			{Identifier: "resource://docs", Scopes: []string{"docs:read"}},
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	w, err := newWorld(cfg)
	require.NoError(t, err)
	mux := http.NewServeMux()
	for _, rt := range w.coordinatorRoutes() {
		require.Equal(t, "coordinator", rt.service)
		mux.HandleFunc(rt.pattern, rt.handler)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e := &coordEnv{t: t, w: w, clock: clock, url: srv.URL}
	e.tok = e.token("app-reporter")
	return e
}

// claims are the v1 lifecycle token claims of app, with a fresh authority
// record behind sid.
func (e *coordEnv) claims(app string) jwt.MapClaims {
	now := e.clock.Now()
	exp := now.Add(900 * time.Second)
	e.w.mu.Lock()
	rec := e.w.addRecord("application", app, "", exp)
	e.w.mu.Unlock()
	return jwt.MapClaims{
		"iss": e.w.issuer, "sub": app, "aud": []string{e.w.issuer},
		"exp": exp.Unix(), "iat": now.Unix(), "jti": newID(),
		"zone_id": e.w.zone, "client_id": app, "scope": "agent:lifecycle",
		"sid": rec.id, "root_sid": rec.id, "use": "session", "sub_type": "application",
	}
}

// token mints a lifecycle token of app; mods edit the claims first.
func (e *coordEnv) token(app string, mods ...func(jwt.MapClaims)) string {
	c := e.claims(app)
	for _, m := range mods {
		m(c)
	}
	return e.sign(c, e.w.keys[0].kid, e.w.keys[0].private)
}

func (e *coordEnv) sign(c jwt.MapClaims, kid string, key *ecdsa.PrivateKey) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	require.NoError(e.t, err)
	return s
}

// resp is a decoded Coordinator answer.
type resp struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

func (r resp) code() string { s, _ := r.body["error"].(string); return s }

func (r resp) str(key string) string { s, _ := r.body[key].(string); return s }

// req describes one request; zero fields mean: e.tok, no body, no headers.
type req struct {
	method, path string
	token        *string // nil: e.tok; pointer to "": no Authorization
	body         string  // sent with Content-Type: application/json when non-empty
	header       map[string]string
	rawHeader    http.Header // added verbatim (multi-valued)
}

func (e *coordEnv) do(r req) resp {
	e.t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr, err := http.NewRequest(r.method, e.url+r.path, body)
	require.NoError(e.t, err)
	tok := e.tok
	if r.token != nil {
		tok = *r.token
	}
	if tok != "" {
		hr.Header.Set("Authorization", "Bearer "+tok)
	}
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	for k, vs := range r.rawHeader {
		for _, v := range vs {
			hr.Header.Add(k, v)
		}
	}
	out := e.send(hr)
	if out.raw != "" {
		require.Equal(e.t, "application/json; charset=utf-8", out.header.Get("Content-Type"), out.raw)
	}
	return out
}

// send sends hr and decodes the JSON answer.
func (e *coordEnv) send(hr *http.Request) resp {
	e.t.Helper()
	res, err := http.DefaultClient.Do(hr)
	require.NoError(e.t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(e.t, err)
	out := resp{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if len(raw) > 0 {
		require.NoError(e.t, json.Unmarshal(raw, &out.body), out.raw)
	}
	return out
}

func tok(s string) *string { return &s }

// mustJSONString encodes v for a request body.
func mustJSONString(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// start starts a session with body fields and requires a 201.
func (e *coordEnv) start(fields map[string]any) resp {
	e.t.Helper()
	if _, ok := fields["application_id"]; !ok {
		fields["application_id"] = "app-reporter"
	}
	r := e.do(req{method: "POST", path: "/zones/zone-acme/agents", body: mustJSONString(e.t, fields)})
	require.Equal(e.t, http.StatusCreated, r.status, r.raw)
	return r
}

// task starts a task session (under parent when non-empty) and returns its id.
func (e *coordEnv) task(parent string, extra ...map[string]any) string {
	f := map[string]any{"parent_authority": "none"}
	if parent != "" {
		f["parent_id"] = parent
	}
	for _, x := range extra {
		for k, v := range x {
			f[k] = v
		}
	}
	return e.start(f).str("agent_session_id")
}

// service starts a service session and returns its id.
func (e *coordEnv) service(parent string) string {
	f := map[string]any{"lifecycle": "service"}
	if parent != "" {
		f["parent_id"] = parent
	}
	return e.start(f).str("agent_session_id")
}

// delegate creates a delegation and returns the answer.
func (e *coordEnv) delegate(fields map[string]any, header ...map[string]string) resp {
	e.t.Helper()
	if _, ok := fields["issuer_application_id"]; !ok {
		fields["issuer_application_id"] = "app-reporter"
	}
	if _, ok := fields["receiver_application_id"]; !ok {
		fields["receiver_application_id"] = "app-reporter"
	}
	r := req{method: "POST", path: "/zones/zone-acme/delegations", body: mustJSONString(e.t, fields)}
	if len(header) > 0 {
		r.header = header[0]
	}
	return e.do(r)
}

// edge creates a narrowing edge from src to dst on resource://tickets and
// returns its id; extra fields override.
func (e *coordEnv) edge(src, dst string, extra map[string]any) string {
	e.t.Helper()
	f := map[string]any{
		"source_session_id": src, "target_session_id": dst,
		"scopes": []string{"tickets:read"}, "resource_id": "resource://tickets", "ttl_seconds": 600,
	}
	for k, v := range extra {
		if v == nil {
			delete(f, k)
			continue
		}
		f[k] = v
	}
	r := e.delegate(f)
	require.Equal(e.t, http.StatusCreated, r.status, r.raw)
	return r.str("delegation_edge_id")
}

func (e *coordEnv) session(id string) SessionInfo {
	e.t.Helper()
	info, ok := e.w.sessionInfo(id)
	require.True(e.t, ok, id)
	return info
}

func (e *coordEnv) edgeStatus(id string) string {
	e.t.Helper()
	info, ok := e.w.edgeInfo(id)
	require.True(e.t, ok, id)
	return info.Status
}

func (e *coordEnv) doRaw(r req, body string) resp {
	e.t.Helper()
	ct := ""
	if r.header != nil {
		ct = r.header["Content-Type"]
	}
	hr, err := http.NewRequest(r.method, e.url+r.path, strings.NewReader(body))
	require.NoError(e.t, err)
	hr.Header.Set("Authorization", "Bearer "+e.tok)
	if ct != "" {
		hr.Header.Set("Content-Type", ct)
	}
	return e.send(hr)
}
