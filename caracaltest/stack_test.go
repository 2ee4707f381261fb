package caracaltest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

const tickets = "resource://tickets"

// mode is one way of reaching a stack: loopback sockets with a plain
// net/http client, or the in-memory transport.
type mode struct {
	name string
	opts []caracaltest.Option
}

var modes = []mode{{"loopback", nil}, {"memory", []caracaltest.Option{caracaltest.InMemory()}}}

func (m mode) start(t *testing.T, opts ...caracaltest.Option) (*caracaltest.Stack, *http.Client) {
	t.Helper()
	s := caracaltest.Start(t, append(append([]caracaltest.Option(nil), m.opts...), opts...)...)
	if m.name == "memory" {
		return s, s.HTTPClient()
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return s, &http.Client{Transport: tr}
}

// wire speaks the protocol to a stack with plain net/http, as a client SDK
// would, without going through one.
type wire struct {
	t  *testing.T
	s  *caracaltest.Stack
	hc *http.Client
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (w wire) do(method, u string, body io.Reader, hdr ...string) reply {
	w.t.Helper()
	req, err := http.NewRequestWithContext(w.t.Context(), method, u, body)
	require.NoError(w.t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := w.hc.Do(req)
	require.NoError(w.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(w.t, err)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (w wire) form(kv ...string) url.Values {
	app := w.s.Application()
	f := url.Values{
		"grant_type":     {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"zone_id":        {w.s.Zone()},
		"application_id": {app.ID},
		"client_secret":  {app.Secret},
	}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Add(kv[i], kv[i+1])
	}
	return f
}

func (w wire) token(f url.Values) reply {
	w.t.Helper()
	return w.do("POST", w.s.STSURL()+"/oauth/2/token", strings.NewReader(f.Encode()),
		"Content-Type", "application/x-www-form-urlencoded")
}

// lifecycle returns a fresh lifecycle token (A0).
func (w wire) lifecycle() string {
	w.t.Helper()
	r := w.token(w.form("scope", "agent:lifecycle", "resource", tickets))
	require.Equal(w.t, 200, r.status, r.raw)
	return r.body["access_token"].(string)
}

func (w wire) coord(method, path, bearer string, body any) reply {
	w.t.Helper()
	hdr := []string{"Authorization", "Bearer " + bearer}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(w.t, err)
		rd = strings.NewReader(string(b))
		hdr = append(hdr, "Content-Type", "application/json")
	}
	return w.do(method, w.s.CoordinatorURL()+"/zones/"+w.s.Zone()+path, rd, hdr...)
}

// start starts a session and returns its id.
func (w wire) start(tok string, body map[string]any) string {
	w.t.Helper()
	body["application_id"] = w.s.Application().ID
	r := w.coord("POST", "/agents", tok, body)
	require.Equal(w.t, 201, r.status, r.raw)
	return r.body["agent_session_id"].(string)
}

// narrowed starts a root and a child with the label, and delegates scopes
// on tickets from the root to the child (A1-A3). It returns the child's
// session id and the edge id.
func (w wire) narrowed(tok, label string, scopes ...string) (root, child, edge string) {
	w.t.Helper()
	return w.narrowedOn(tok, tickets, label, scopes...)
}

// narrowedOn is narrowed for another resource.
func (w wire) narrowedOn(tok, resource, label string, scopes ...string) (root, child, edge string) {
	w.t.Helper()
	root = w.start(tok, map[string]any{"labels": []string{"dispatcher"}, "parent_authority": "inherit"})
	child = w.start(tok, map[string]any{"parent_id": root, "ttl_seconds": 600, "labels": []string{label}, "parent_authority": "none"})
	r := w.coord("POST", "/delegations", tok, map[string]any{
		"issuer_application_id": w.s.Application().ID, "source_session_id": root,
		"target_session_id": child, "receiver_application_id": w.s.Application().ID,
		"scopes": scopes, "resource_id": resource, "ttl_seconds": 600,
	})
	require.Equal(w.t, 201, r.status, r.raw)
	return root, child, r.body["delegation_edge_id"].(string)
}

func (w wire) mint(child, edge, scope string, kv ...string) reply {
	w.t.Helper()
	return w.mintOn(tickets, child, edge, scope, kv...)
}

func (w wire) mintOn(resource, child, edge, scope string, kv ...string) reply {
	w.t.Helper()
	return w.token(w.form(append([]string{"scope", scope, "resource", resource,
		"agent_session_id", child, "delegation_edge_id", edge}, kv...)...))
}

func TestStartDefaults(t *testing.T) {
	s := caracaltest.Start(t)
	other := caracaltest.Start(t)

	assert.Equal(t, "zone-test", s.Zone())
	app := s.Application()
	assert.Equal(t, "app-test", app.ID)
	assert.NotEmpty(t, app.Secret)
	assert.NotEqual(t, app.Secret, other.Application().Secret, "each stack gets a random secret")
	assert.Equal(t, s.STSURL(), s.Issuer())
	for _, u := range []string{s.STSURL(), s.CoordinatorURL(), s.GatewayURL(), s.UpstreamURL(tickets)} {
		assert.True(t, strings.HasPrefix(u, "http://127.0.0.1:"), u)
	}
	assert.Empty(t, s.UpstreamURL("resource://nope"))
	assert.Empty(t, s.ClientOptions(), "a loopback stack needs no special HTTP client")

	cfg := s.Config()
	require.NoError(t, cfg.Validate())
	assert.Equal(t, "zone-test", cfg.ZoneID)
	assert.Equal(t, "app-test", cfg.ApplicationID)
	assert.Equal(t, app.Secret, cfg.ClientSecret)
	assert.Empty(t, cfg.BootstrapToken)
	assert.Equal(t, s.STSURL(), cfg.STSURL)
	assert.Equal(t, s.CoordinatorURL(), cfg.CoordinatorURL)
	assert.Equal(t, s.GatewayURL(), cfg.GatewayURL)
	assert.Equal(t, []string{tickets}, cfg.Resources)
	assert.Equal(t, []caracal.ResourceBinding{{ResourceID: tickets, UpstreamPrefix: s.UpstreamURL(tickets)}}, cfg.Bindings)

	c, err := s.NewClient()
	require.NoError(t, err)
	assert.Equal(t, cfg.ZoneID, c.Config().ZoneID)
	require.NoError(t, c.Close(t.Context()))
}

func TestInMemoryURLs(t *testing.T) {
	s := caracaltest.Start(t, caracaltest.InMemory())
	assert.Equal(t, "http://sts.caracal.internal", s.STSURL())
	assert.Equal(t, "http://coordinator.caracal.internal", s.CoordinatorURL())
	assert.Equal(t, "http://gateway.caracal.internal", s.GatewayURL())
	assert.Equal(t, "http://res-tickets.upstream.caracal.internal", s.UpstreamURL(tickets))
	assert.Len(t, s.ClientOptions(), 1)
	require.NoError(t, s.Config().Validate())
}

func TestOptions(t *testing.T) {
	_, err := caracaltest.New(caracaltest.WithoutDefaults())
	require.Error(t, err, "an empty zone has no application to act as")

	s := caracaltest.Start(t,
		caracaltest.WithZone("zone-acme"),
		caracaltest.WithApplication(caracaltest.App{ID: "app-test", Secret: "fixed"}),
		caracaltest.WithApplication(caracaltest.App{ID: "app-other"}),
		caracaltest.WithResource(caracaltest.Resource{Identifier: "resource://docs", Scopes: []string{"docs:read"}}),
		caracaltest.WithGrant("resource://docs", "app-test", map[string][]string{"reader": {"docs:read"}}),
	)
	assert.Equal(t, "zone-acme", s.Zone())
	assert.Equal(t, caracaltest.App{ID: "app-test", Secret: "fixed"}, s.Application(), "an app with a default's id replaces it")
	cfg := s.Config()
	assert.ElementsMatch(t, []string{tickets, "resource://docs"}, cfg.Resources)
	assert.Len(t, cfg.Bindings, 2)
	assert.NotEqual(t, s.UpstreamURL(tickets), s.UpstreamURL("resource://docs"), "each resource has its own upstream")

	bare := caracaltest.Start(t, caracaltest.WithoutDefaults(), caracaltest.WithApplication(caracaltest.App{ID: "solo"}))
	assert.Equal(t, "zone-test", bare.Zone())
	assert.Equal(t, "solo", bare.Application().ID)
	assert.Empty(t, bare.Config().Resources)
}

func TestWriteConfig(t *testing.T) {
	s := caracaltest.Start(t)
	dir := filepath.Join(t.TempDir(), "profile")
	// A stale secret file with loose permissions is tightened.
	require.NoError(t, os.MkdirAll(dir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "client-secret"), []byte("old"), 0o644))

	path, err := s.WriteConfig(dir)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "caracal.toml"), path)

	var prof struct {
		ZoneID              string `toml:"zone_id"`
		ApplicationID       string `toml:"application_id"`
		AppClientSecretFile string `toml:"app_client_secret_file"`
		STSURL              string `toml:"sts_url"`
		CoordinatorURL      string `toml:"coordinator_url"`
		GatewayURL          string `toml:"gateway_url"`
		Credentials         []struct {
			Resource       string `toml:"resource"`
			UpstreamPrefix string `toml:"upstream_prefix"`
		} `toml:"credentials"`
	}
	md, err := toml.DecodeFile(path, &prof)
	require.NoError(t, err)
	assert.Empty(t, md.Undecoded(), "only the documented keys")
	assert.Equal(t, "zone-test", prof.ZoneID)
	assert.Equal(t, "app-test", prof.ApplicationID)
	assert.Equal(t, s.STSURL(), prof.STSURL)
	assert.Equal(t, s.CoordinatorURL(), prof.CoordinatorURL)
	assert.Equal(t, s.GatewayURL(), prof.GatewayURL)
	require.Len(t, prof.Credentials, 1)
	assert.Equal(t, tickets, prof.Credentials[0].Resource)
	assert.Equal(t, s.UpstreamURL(tickets), prof.Credentials[0].UpstreamPrefix)
	assert.Equal(t, filepath.Join(dir, "client-secret"), prof.AppClientSecretFile)

	secret, err := os.ReadFile(prof.AppClientSecretFile)
	require.NoError(t, err)
	assert.Equal(t, s.Application().Secret, strings.TrimSpace(string(secret)))
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), s.Application().Secret, "the secret lives only in its own file")
	if runtime.GOOS != "windows" {
		for _, p := range []string{path, prof.AppClientSecretFile} {
			fi, err := os.Stat(p)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), p)
		}
	}

	// The SDK loads it to the same configuration.
	noEnv := caracal.WithLookupEnv(func(string) (string, bool) { return "", false })
	cfg, err := caracal.LoadConfig(caracal.WithConfigFile(path), noEnv)
	require.NoError(t, err)
	want := s.Config()
	assert.Equal(t, want.ZoneID, cfg.ZoneID)
	assert.Equal(t, want.ApplicationID, cfg.ApplicationID)
	assert.Equal(t, want.ClientSecret, cfg.ClientSecret)
	assert.Equal(t, want.STSURL, cfg.STSURL)
	assert.Equal(t, want.CoordinatorURL, cfg.CoordinatorURL)
	assert.Equal(t, want.GatewayURL, cfg.GatewayURL)
	assert.Equal(t, want.Bindings, cfg.Bindings)
}

func mustGet(t *testing.T, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	return req
}

func TestSTSHealthAndReady(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s, hc := m.start(t)
			w := wire{t: t, s: s, hc: hc}
			r := w.do("GET", s.STSURL()+"/health", nil)
			assert.Equal(t, 200, r.status)
			assert.Empty(t, r.raw)
			r = w.do("GET", s.STSURL()+"/ready", nil)
			assert.Equal(t, 200, r.status)
			assert.JSONEq(t, `{"ok":true,"ready":true}`, r.raw)
			assert.Equal(t, "application/json", r.header.Get("Content-Type"))
		})
	}
}
