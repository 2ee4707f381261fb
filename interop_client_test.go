package caracal_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// http.Client's own features keep working around the SDK transport: a 307
// from the resource is followed with the body replayed from GetBody and a
// fresh mandate, and a cookie the resource sets goes back to it, never to
// another host, which gets no bearer either.
func TestHTTPClientFeatures(t *testing.T) {
	g := startGoverned(t)
	var hits atomic.Int32
	var next http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/tickets/move":
			http.SetCookie(w, &http.Cookie{Name: "affinity", Value: "a1", Path: "/"})
			w.Header().Set("Location", "/tickets/moved")
			w.WriteHeader(http.StatusTemporaryRedirect)
		default:
			w.Header().Set("X-Cookie", r.Header.Get("Cookie"))
			_, _ = w.Write(body)
		}
	})
	g.next.Store(&next)

	var outsideCookie atomic.Value
	outside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		outsideCookie.Store(r.Header.Get("Cookie") + "|" + r.Header.Get("Authorization"))
	}))
	t.Cleanup(outside.Close)
	// Another host name for the same listener: a cookie jar ignores ports.
	outsideURL := strings.Replace(outside.URL, "127.0.0.1", "localhost", 1)

	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	hc := &http.Client{Transport: g.c.Transport(nil, caracal.WithScopes("tickets:read")), Jar: jar}
	ctx := g.reader.Context()

	mints := g.st.Count(caracaltest.RouteToken)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url(tickets, "/tickets/move"), strings.NewReader("payload"))
	require.NoError(t, err)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "payload", string(body), "the 307 replays the body")
	assert.Equal(t, "affinity=a1", resp.Header.Get("X-Cookie"))
	assert.Equal(t, int32(2), hits.Load())
	assert.Equal(t, mints+2, g.st.Count(caracaltest.RouteToken), "a mandate per hop")

	req, err = http.NewRequestWithContext(ctx, http.MethodGet, outsideURL+"/x", nil)
	require.NoError(t, err)
	resp, err = hc.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, "|", outsideCookie.Load(), "no cookie and no bearer to another host")
}

// A ClientTrace on a governed request sees the connection to the Gateway,
// and Close and http.NoBody keep working.
func TestClientTraceAndClose(t *testing.T) {
	g := startGoverned(t)
	gw, err := url.Parse(g.st.GatewayURL())
	require.NoError(t, err)

	var mu sync.Mutex
	var hosts []string
	trace := &httptrace.ClientTrace{GetConn: func(hostPort string) {
		mu.Lock()
		hosts = append(hosts, hostPort)
		mu.Unlock()
	}}
	ctx := httptrace.WithClientTrace(g.reader.Context(), trace)
	hc := &http.Client{Transport: g.c.Transport(nil, caracal.WithScopes("tickets:read"))}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url(tickets, "/tickets/1"), http.NoBody)
	require.NoError(t, err)
	req.Close = true
	resp, err := hc.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	mu.Lock()
	defer mu.Unlock()
	assert.Contains(t, hosts, gw.Host)
	assert.Equal(t, "close", lastGatewayRequest(t, g.st).Header.Get("Connection"))
}

// Over an HTTP/2 base transport (h2c to a front of the Gateway) governed
// requests with and without bodies arrive intact, once each.
func TestGovernedOverHTTP2Base(t *testing.T) {
	g := startGoverned(t)
	gwURL, err := url.Parse(g.st.GatewayURL())
	require.NoError(t, err)
	var protos []string
	var mu sync.Mutex
	front := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		protos = append(protos, r.Proto)
		mu.Unlock()
		(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(gwURL)
			pr.Out.Host = gwURL.Host
		}}).ServeHTTP(w, r)
	}))
	front.Config.Protocols = new(http.Protocols)
	front.Config.Protocols.SetHTTP1(true)
	front.Config.Protocols.SetUnencryptedHTTP2(true)
	front.Start()
	t.Cleanup(front.Close)
	c, agent := behindGateway(t, g.st, front.URL, "tickets:write")
	base := &http.Transport{Protocols: new(http.Protocols)}
	base.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(base.CloseIdleConnections)
	hc := &http.Client{Transport: c.Transport(base, caracal.WithScopes("tickets:write"))}
	for _, tc := range []struct {
		method string
		body   io.Reader
		want   string
	}{
		{http.MethodGet, nil, ""},
		{http.MethodPost, http.NoBody, ""},
		{http.MethodPost, strings.NewReader("hello"), "hello"},
		{http.MethodPut, io.MultiReader(strings.NewReader("stream")), "stream"},
	} {
		req, err := http.NewRequestWithContext(agent.Context(), tc.method, g.url(tickets, "/tickets/1"), tc.body)
		require.NoError(t, err)
		resp, err := hc.Do(req)
		require.NoError(t, err)
		var echo caracaltest.EchoResponse
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&echo))
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, tc.method, echo.Method)
		assert.Equal(t, tc.want, echo.Body)
	}
	mu.Lock()
	assert.Equal(t, []string{"HTTP/2.0", "HTTP/2.0", "HTTP/2.0", "HTTP/2.0"}, protos)
	mu.Unlock()

	// A response the Gateway cuts for a revocation ends in an error over
	// HTTP/2 too: its trailer arrives in the stream's last HEADERS frame.
	var cut http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("a", 4096)))
		w.(http.Flusher).Flush()
		_ = g.st.Terminate(agent.ID())
		_, _ = w.Write([]byte(strings.Repeat("b", 4096)))
	})
	g.next.Store(&cut)
	req, err := http.NewRequestWithContext(agent.Context(), http.MethodGet, g.url(tickets, "/tickets/stream"), nil)
	require.NoError(t, err)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "HTTP/2.0", resp.Proto)
	_, err = io.ReadAll(resp.Body)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
}
