package caracal_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// seenAt is what a handler behind the Gateway received.
type seenAt struct {
	Path     string
	Session  string
	Edge     string
	Baggage  string
	Header   http.Header
	HasAgent bool
}

// lastGatewayRequest returns the last request the stack's Gateway received.
func lastGatewayRequest(t *testing.T, st *caracaltest.Stack) caracaltest.Request {
	t.Helper()
	var last *caracaltest.Request
	for _, r := range st.Requests() {
		if r.Service == "gateway" {
			r := r
			last = &r
		}
	}
	require.NotNil(t, last, "the Gateway received nothing")
	return *last
}

// An httputil.ReverseProxy whose Transport is the SDK transport governs the
// requests it forwards into a binding, whichever way it rewrites them: the
// Gateway gets a fresh mandate for the agent bound to the inbound request's
// context, never the proxy client's own Authorization, hop-by-hop headers
// or Caracal baggage it made up.
func TestReverseProxyGoverns(t *testing.T) {
	g := startGoverned(t)
	seen := make(chan seenAt, 4)
	var next http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- seenAt{Path: r.URL.Path, Baggage: r.Header.Get("Baggage"), Header: r.Header.Clone()}
		_, _ = io.WriteString(w, "ok")
	})
	g.next.Store(&next)
	target, err := url.Parse(g.st.UpstreamURL(tickets))
	require.NoError(t, err)
	tr := g.c.Transport(nil, caracal.WithScopes("tickets:read"))

	proxies := map[string]*httputil.ReverseProxy{
		"rewrite": {Transport: tr, Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		}},
		"director": {Transport: tr, Director: func(r *http.Request) {
			r.URL.Scheme, r.URL.Host = target.Scheme, target.Host
		}},
	}
	for name, p := range proxies {
		t.Run(name, func(t *testing.T) {
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				p.ServeHTTP(w, r.WithContext(caracal.NewContext(r.Context(), g.reader.Agent())))
			}))
			t.Cleanup(front.Close)
			mints := g.st.Count(caracaltest.RouteToken)

			req, err := http.NewRequest(http.MethodGet, front.URL+"/tickets/7", nil)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer proxy-client-secret")
			req.Header.Set("Connection", "X-Hop")
			req.Header.Set("X-Hop", "drop me")
			req.Header.Set("Baggage", "caracal.agent_session=forged,tenant=t1")
			resp, err := front.Client().Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)

			got := <-seen
			assert.Equal(t, "/tickets/7", got.Path)
			assert.Equal(t, mints+1, g.st.Count(caracaltest.RouteToken), "one mandate minted")
			gw := lastGatewayRequest(t, g.st)
			assert.NotContains(t, gw.Header.Get("Authorization"), "proxy-client-secret")
			assert.Contains(t, gw.Header.Get("Authorization"), "use=gateway")
			assert.Empty(t, gw.Header.Get("X-Hop"))
			assert.Contains(t, gw.Header.Get("Baggage"), "caracal.agent_session="+g.reader.ID())
			assert.NotContains(t, gw.Header.Get("Baggage"), "forged")
			assert.Contains(t, gw.Header.Get("Baggage"), "tenant=t1")
		})
	}
}

// A resource server that verifies its callers with the middleware and calls
// on (through the Gateway, with the SDK transport, directly or through a
// ReverseProxy) acts for the calling agent: the outbound mandate is minted
// for the inbound agent's session and delegation.
func TestMiddlewareForwardsTheInboundAgent(t *testing.T) {
	g := startGoverned(t)
	mw, err := g.c.Middleware(caracal.VerifyTokens(tickets))
	require.NoError(t, err)
	tr := g.c.Transport(nil, caracal.WithScopes("tickets:read"))
	hc := &http.Client{Transport: tr}
	inner := make(chan seenAt, 4)
	target, err := url.Parse(g.st.UpstreamURL(tickets))
	require.NoError(t, err)
	proxy := &httputil.ReverseProxy{Transport: tr, Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.URL.Path = "/inner" + strings.TrimPrefix(pr.In.URL.Path, "/proxy")
		pr.Out.URL.RawPath = ""
	}}

	mux := http.NewServeMux()
	mux.HandleFunc("/inner/{id}", func(w http.ResponseWriter, r *http.Request) {
		a, ok := caracal.FromContext(r.Context())
		s := seenAt{Path: r.URL.Path, HasAgent: ok}
		if ok {
			s.Session, s.Edge = a.SessionID(), a.DelegationID()
		}
		inner <- s
		_, _ = io.WriteString(w, r.PathValue("id"))
	})
	mux.HandleFunc("/outer/{id}", func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, g.url(tickets, "/inner/"+r.PathValue("id")), nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp, err := hc.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
	mux.Handle("/proxy/", proxy)
	next := mw(mux)
	g.next.Store(&next)

	client := g.c.HTTPClient(caracal.WithScopes("tickets:read"))
	for _, path := range []string{"/outer/5", "/proxy/5"} {
		resp, err := get(t, client, g.reader.Context(), g.url(tickets, path))
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", path, body)
		assert.Equal(t, "5", string(body))
		s := <-inner
		assert.True(t, s.HasAgent)
		assert.Equal(t, g.reader.ID(), s.Session, path)
		assert.Equal(t, g.reader.Agent().DelegationID(), s.Edge, path)
	}
}

// A handler can spawn a child of the calling agent, narrowed, also from
// work that outlives the request (context.WithoutCancel), and the child
// calls the resource under its own session.
func TestMiddlewareSpawnsUnderTheInboundAgent(t *testing.T) {
	g := startGoverned(t)
	mw, err := g.c.Middleware(caracal.VerifyTokens(tickets))
	require.NoError(t, err)
	type result struct {
		parent string
		err    error
	}
	out := make(chan result, 1)
	next := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/spawn" {
			w.WriteHeader(http.StatusOK)
			return
		}
		bg := context.WithoutCancel(r.Context())
		go func() {
			child, err := g.c.Spawn(bg, caracal.WithLabels("reader"),
				caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, tickets, caracal.Constraints{MaxHops: 2}, time.Minute)))
			if err != nil {
				out <- result{err: err}
				return
			}
			defer child.Close(context.Background())
			info, _ := g.st.SessionInfo(child.ID())
			req, err := http.NewRequestWithContext(child.Context(), http.MethodGet, g.url(tickets, "/tickets/9"), nil)
			if err == nil {
				var resp *http.Response
				resp, err = g.c.HTTPClient(caracal.WithScopes("tickets:read")).Do(req)
				if err == nil {
					_ = resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = errors.New(resp.Status)
					}
				}
			}
			out <- result{parent: info.ParentID, err: err}
		}()
		w.WriteHeader(http.StatusNoContent)
	}))
	g.next.Store(&next)
	// The caller's edge allows a narrowed grandchild (PROTOCOL §6.5, §6.6).
	caller, err := g.c.Spawn(g.root.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, tickets, caracal.Constraints{MaxHops: 3}, 10*time.Minute)))
	require.NoError(t, err)
	resp, err := get(t, g.c.HTTPClient(caracal.WithScopes("tickets:read")), caller.Context(), g.url(tickets, "/spawn"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	r := <-out
	require.NoError(t, r.err)
	assert.Equal(t, caller.ID(), r.parent)
}

// A ReverseProxy relaying a response the Gateway cuts for a revocation
// aborts its own response instead of ending it cleanly, so that its client
// does not take the part it got for the whole answer.
func TestReverseProxyRelaysARevocationCut(t *testing.T) {
	g := startGoverned(t)
	child := g.child(t, "reader", tickets, "tickets:read")
	var next http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("a", 4096)))
		w.(http.Flusher).Flush()
		_ = g.st.Terminate(child.ID())
		_, _ = w.Write([]byte(strings.Repeat("b", 4096)))
	})
	g.next.Store(&next)
	target, err := url.Parse(g.st.UpstreamURL(tickets))
	require.NoError(t, err)
	proxy := &httputil.ReverseProxy{
		Transport: g.c.Transport(nil, caracal.WithScopes("tickets:read")),
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	front := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxy.ServeHTTP(w, r.WithContext(caracal.NewContext(r.Context(), child.Agent())))
	}))
	front.Config.ErrorLog = log.New(io.Discard, "", 0)
	front.Start()
	t.Cleanup(front.Close)

	resp, err := front.Client().Get(front.URL + "/tickets/stream")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "read %d bytes", len(b))
}
