package caracaltest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/wire"
)

func TestGatewayForwarding(t *testing.T) {
	env := newSTSEnv(t)
	env.reply = func(rw http.ResponseWriter, r *http.Request) {
		h := rw.Header()
		h.Set("Server", "upstream/1.0")
		h.Set("X-Powered-By", "php")
		h.Set("X-AspNet-Version", "4")
		h.Set("X-AspNetMvc-Version", "5")
		h.Set("X-Caracal-Identity", "secret-ish")
		h.Set("Refresh", "5")
		h.Set("Location", "http://elsewhere.example/x")
		h.Set("Content-Location", "/tickets/42")
		h.Set("Connection", "X-Hop")
		h.Set("X-Hop", "1")
		h.Set("X-Custom", "kept")
		rw.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(rw, "created")
	}
	_, child, e := env.chain()
	req, err := http.NewRequest("POST", env.gw.URL+"/tickets?b=2&a=1", strings.NewReader(`{"title":"x"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+env.mandate(t, child, e, "tickets:read"))
	req.Header.Set(wire.HeaderResource, exResource)
	req.Header.Set("Connection", "X-Client-Hop")
	req.Header.Set("X-Client-Hop", "1")
	req.Header.Set("Proxy-Authorization", "Basic x")
	req.Header.Set("X-Caracal-Anything", "1")
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("X-Forwarded-Host", "evil")
	req.Header.Set("Forwarded", "for=6.6.6.6")
	req.Header.Set("X-Real-Ip", "6.6.6.6")
	req.Header.Set("Baggage", "caracal.hop=1, userid=alice;prop=1")
	req.Header.Add("Baggage", "caracal.agent_session=s,tenant=acme")
	req.Header.Set("Traceparent", "00-00000000000000000000000000000000-3c4d5e6f708192a3-01")
	req.Header.Set("X-Custom", "kept")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, "created", readBody(t, resp))
	for _, k := range []string{"Server", "X-Powered-By", "X-Aspnet-Version", "X-Aspnetmvc-Version", "X-Caracal-Identity", "Refresh", "Location", "X-Hop"} {
		assert.Empty(t, resp.Header.Get(k), k)
	}
	assert.Equal(t, "/tickets/42", resp.Header.Get("Content-Location"), "relative locations are kept")
	assert.Equal(t, "kept", resp.Header.Get("X-Custom"))

	up := env.lastSeen(t)
	assert.Equal(t, "POST", up.Method)
	assert.Equal(t, `{"title":"x"}`, up.Body)
	assert.Equal(t, "b=2&a=1", up.RawQuery)
	for _, k := range []string{"X-Client-Hop", "Proxy-Authorization", "X-Caracal-Anything", "Forwarded", "X-Real-Ip"} {
		assert.Empty(t, up.Header.Get(k), k)
	}
	assert.Equal(t, "127.0.0.1", up.Header.Get("X-Forwarded-For"))
	assert.Equal(t, strings.TrimPrefix(env.gw.URL, "http://"), up.Header.Get("X-Forwarded-Host"))
	assert.Equal(t, "userid=alice;prop=1,tenant=acme", up.Header.Get("Baggage"))
	assert.Regexp(t, `^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`, up.Header.Get("Traceparent"))
	assert.NotContains(t, up.Header.Get("Traceparent"), "00000000000000000000000000000000", "an invalid traceparent is replaced")
	assert.Equal(t, "kept", up.Header.Get("X-Custom"))
	assert.Equal(t, "application/json", up.Header.Get("Content-Type"))
}

func TestGatewayURLUpstream(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		got = r.Clone(r.Context())
		if r.URL.Path == "/base/redirect" {
			http.Redirect(rw, r, "/base/elsewhere", http.StatusFound)
			return
		}
		rw.Header().Set("X-Upstream", "url")
		_, _ = io.WriteString(rw, "over http")
	}))
	t.Cleanup(srv.Close)
	env := newSTSEnv(t, func(c *worldConfig) {
		c.Resources[0].Upstream = nil
		c.Resources[0].UpstreamURL = srv.URL + "/base?k=v"
		c.UpstreamClient = srv.Client()
		c.Resources = append(c.Resources,
			Resource{Identifier: "resource://down", Scopes: []string{"tickets:read"}, UpstreamURL: "http://127.0.0.1:1"},
			Resource{Identifier: "resource://meta", Scopes: []string{"tickets:read"}, UpstreamURL: "http://169.254.169.254/latest"},
			Resource{Identifier: "resource://creds", Scopes: []string{"tickets:read"}, UpstreamURL: "http://user:pw@127.0.0.1:1"},
		)
		for _, id := range []string{"resource://down", "resource://meta", "resource://creds"} {
			c.Policy.Grants[id] = resourceGrant{Application: exApp, Roles: map[string][]string{"reader": {"tickets:read"}}}
		}
	})
	_, child, e := env.readerEdge()
	resp := env.gateway(t, "GET", "/tickets/1?x=2&k=client", env.mandate(t, child, e, "tickets:read"))
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "over http", readBody(t, resp))
	assert.Equal(t, "url", resp.Header.Get("X-Upstream"))
	require.NotNil(t, got)
	assert.Equal(t, "/base/tickets/1", got.URL.Path)
	assert.Equal(t, url.Values{"k": {"v"}, "x": {"2"}}, got.URL.Query(), "upstream query keys win")
	assert.Equal(t, strings.TrimPrefix(srv.URL, "http://"), got.Host)
	assert.True(t, strings.HasPrefix(got.Header.Get("Authorization"), "Bearer "))

	t.Run("redirects are not followed", func(t *testing.T) {
		req, err := http.NewRequest("GET", env.gw.URL+"/redirect", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+env.mandate(t, child, e, "tickets:read"))
		req.Header.Set(wire.HeaderResource, exResource)
		hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := hc.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Equal(t, http.StatusFound, resp.StatusCode)
		assert.Equal(t, "/base/elsewhere", resp.Header.Get("Location"))
	})
	for id, desc := range map[string]string{
		"resource://down":  "upstream unreachable",
		"resource://meta":  "upstream not addressable",
		"resource://creds": "upstream not addressable",
	} {
		t.Run(id, func(t *testing.T) {
			root, c := env.session(exApp), env.session(exApp, "reader")
			ce := env.edge(root, c, nil, []string{"tickets:read"}, wire.Constraints{Resources: []string{id}}, time.Hour)
			f := baseForm("scope", "tickets:read", "resource", id, "agent_session_id", c.id, "delegation_edge_id", ce.id)
			resp := env.gateway(t, "GET", "/x", env.token(t, f).AccessToken, wire.HeaderResource, id)
			requireError(t, resp, 502, "internal_error", desc)
		})
	}
}

func TestGatewayRevokedMidStream(t *testing.T) {
	env := newSTSEnv(t)
	_, child, e := env.readerEdge()
	var secondWrite error
	env.reply = func(rw http.ResponseWriter, r *http.Request) {
		// A server goroutine: FailNow belongs to the test's goroutine.
		if _, err := rw.Write([]byte(strings.Repeat("a", 4096))); !assert.NoError(t, err) {
			return
		}
		rw.(http.Flusher).Flush()
		env.w.mu.Lock()
		env.w.revokeEdge(e)
		env.w.mu.Unlock()
		_, secondWrite = rw.Write([]byte(strings.Repeat("b", 4096)))
	}
	resp := env.gateway(t, "GET", "/stream", env.mandate(t, child, e, "tickets:read"))
	require.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, strings.Repeat("a", 4096), readBody(t, resp))
	assert.Equal(t, "true", resp.Trailer.Get("X-Caracal-Revoked"))
	assert.Error(t, secondWrite)
}

// A body of unknown length past the Gateway's 10 MiB cap is answered 413 by
// the Gateway, whatever the in-process upstream makes of the cut body.
func TestGatewayChunkedBodyCap(t *testing.T) {
	env := newSTSEnv(t)
	// The env's upstream has read the body before reply runs; a body cut
	// at the cap keeps failing reads.
	env.reply = func(rw http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(rw, "upstream could not read the body", http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(rw, strconv.Itoa(len(env.lastSeen(t).Body)))
	}
	_, child, e := env.chain()
	send := func(size int64) *http.Response {
		// A reader of no known length goes out chunked.
		body := io.LimitReader(zeros{}, size)
		req, err := http.NewRequest("POST", env.gw.URL+"/tickets", struct{ io.Reader }{body})
		require.NoError(t, err)
		require.EqualValues(t, 0, req.ContentLength)
		req.Header.Set("Authorization", "Bearer "+env.mandate(t, child, e, "tickets:read"))
		req.Header.Set(wire.HeaderResource, exResource)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { _ = resp.Body.Close() })
		return resp
	}

	resp := send(10 << 20)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, strconv.Itoa(10<<20), readBody(t, resp))

	resp = send(10<<20 + 1)
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	body := readBody(t, resp)
	assert.Contains(t, body, `"payload_too_large"`)
	assert.NotContains(t, body, "upstream could not read")
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// The same cap for an upstream reached over HTTP.
func TestGatewayChunkedBodyCapURLUpstream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(srv.Close)
	env := newSTSEnv(t, func(c *worldConfig) {
		c.Resources[0].Upstream = nil
		c.Resources[0].UpstreamURL = srv.URL
		c.UpstreamClient = srv.Client()
	})
	_, child, e := env.chain()
	req, err := http.NewRequest("POST", env.gw.URL+"/tickets", struct{ io.Reader }{io.LimitReader(zeros{}, 10<<20+1)})
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+env.mandate(t, child, e, "tickets:read"))
	req.Header.Set(wire.HeaderResource, exResource)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.Contains(t, readBody(t, resp), `"payload_too_large"`)
}

// An informational response from the upstream (103 Early Hints) is not its
// answer: the Gateway's client passes on the final status.
func TestGatewayPassesFinalStatusAfterInformational(t *testing.T) {
	env := newSTSEnv(t)
	env.reply = func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Link", "</style.css>; rel=preload")
		rw.WriteHeader(http.StatusEarlyHints)
		rw.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(rw, "created")
	}
	_, child, e := env.chain()
	req, err := http.NewRequest("POST", env.gw.URL+"/tickets", strings.NewReader(`{}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+env.mandate(t, child, e, "tickets:read"))
	req.Header.Set(wire.HeaderResource, exResource)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, "created", readBody(t, resp))
}

// An in-process upstream that aborts before answering (panic with
// http.ErrAbortHandler, net/http's way to drop the connection) is an
// unreachable upstream to the Gateway, which answers 502 itself.
func TestGatewayAnswers502WhenUpstreamAborts(t *testing.T) {
	env := newSTSEnv(t)
	env.reply = func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }
	_, child, e := env.chain()
	resp := env.gateway(t, "GET", "/tickets", env.mandate(t, child, e, "tickets:read"))
	requireError(t, resp, 502, "internal_error", "upstream unreachable")

	// Aborted mid-response: the Gateway's response is cut too.
	env.reply = func(rw http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(rw, "partial")
		rw.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	resp = env.gateway(t, "GET", "/tickets", env.mandate(t, child, e, "tickets:read"))
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, err := io.ReadAll(resp.Body)
	require.Error(t, err)
}

// A Location or Content-Location naming another host without a scheme is
// absolute for the client that follows it: the Gateway drops it too.
func TestGatewayDropsSchemeRelativeLocations(t *testing.T) {
	env := newSTSEnv(t)
	env.reply = func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Location", "//elsewhere.example/x")
		rw.Header().Set("Content-Location", "//elsewhere.example/y")
		rw.WriteHeader(http.StatusCreated)
	}
	_, child, e := env.readerEdge()
	resp := env.gateway(t, "POST", "/tickets", env.mandate(t, child, e, "tickets:read"))
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Empty(t, resp.Header.Values("Location"))
	assert.Empty(t, resp.Header.Values("Content-Location"))
}

// A body of exactly 10 MiB with a declared length is within the Gateway's
// cap and reaches the upstream whole; one byte more is refused 413.
func TestGatewayBodyCapBoundary(t *testing.T) {
	env := newSTSEnv(t)
	_, child, e := env.readerEdge()
	send := func(n int) *http.Response {
		req, err := http.NewRequest("POST", env.gw.URL+"/upload", strings.NewReader(strings.Repeat("a", n)))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+env.mandate(t, child, e, "tickets:read"))
		req.Header.Set(wire.HeaderResource, exResource)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	require.Equal(t, http.StatusOK, send(gatewayBodyMax).StatusCode)
	assert.Len(t, env.lastSeen(t).Body, gatewayBodyMax)
	requireError(t, send(gatewayBodyMax+1), 413, "payload_too_large", "request body too large")
}
