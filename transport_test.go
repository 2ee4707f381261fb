package caracal_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

const (
	tickets = "resource://tickets"
	ledger  = "resource://ledger"
)

// governed is a stack whose upstreams count what reaches them, a client,
// and a child session labelled reader holding a tickets:read edge.
type governed struct {
	st       *caracaltest.Stack
	c        *caracal.Client
	root     *caracal.Session
	reader   *caracal.Session
	upstream atomic.Int32
	// next, when set, answers upstream requests instead of the echo.
	next atomic.Pointer[http.Handler]
}

func startGoverned(t testing.TB, opts ...caracaltest.Option) *governed {
	g := &governed{}
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.upstream.Add(1)
		if h := g.next.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(caracaltest.EchoResponse{Method: r.Method, Path: r.URL.Path, Body: string(body),
			Baggage: r.Header.Get("Baggage"), Traceparent: r.Header.Get("Traceparent")})
	})
	base := []caracaltest.Option{
		caracaltest.WithResource(caracaltest.Resource{Identifier: tickets, ID: "res-tickets",
			Scopes: []string{"tickets:read", "tickets:write", "tickets:delete"}, Upstream: up}),
		caracaltest.WithResource(caracaltest.Resource{Identifier: ledger, Scopes: []string{"ledger:read"}, Upstream: up,
			Operations: map[string]string{"GET /ledger/entries": "ledger:read"}}),
	}
	g.st = caracaltest.Start(t, append(base, opts...)...)
	g.st.Config()
	var err error
	g.c, err = g.st.NewClient()
	require.NoError(t, err)
	t.Cleanup(func() { _ = g.c.Close(context.Background()) })
	g.root, err = g.c.Spawn(context.Background())
	require.NoError(t, err)
	g.reader = g.child(t, "reader", tickets, "tickets:read")
	return g
}

func (g *governed) child(t testing.TB, label, resource string, scopes ...string) *caracal.Session {
	s, err := g.c.Spawn(g.root.Context(), caracal.WithLabels(label),
		caracal.WithGrant(caracal.Grant.Narrow(scopes, resource, caracal.Constraints{}, 10*time.Minute)))
	require.NoError(t, err)
	return s
}

func (g *governed) url(resource, path string) string { return g.st.UpstreamURL(resource) + path }

func get(t testing.TB, hc *http.Client, ctx context.Context, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	return hc.Do(req)
}

// The seed guide's "Validate the integration" list: allow, extra-scope deny,
// undeclared path deny, revoked session deny; only the allow reaches the
// upstream.
func TestGovernedAllowAndDenials(t *testing.T) {
	g := startGoverned(t, caracaltest.WithGrant(ledger, "app-test", map[string][]string{"auditor": {"ledger:read"}}))
	hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"))

	// Allow.
	resp, err := get(t, hc, g.reader.Context(), g.url(tickets, "/tickets/42"))
	require.NoError(t, err)
	var echo caracaltest.EchoResponse
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&echo))
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "/tickets/42", echo.Path)
	assert.NotContains(t, echo.Baggage, "caracal.", "the Gateway strips Caracal baggage")
	require.Equal(t, int32(1), g.upstream.Load())

	// Extra scope: the STS refuses the mint; nothing is sent to the Gateway.
	gw := g.st.Count(caracaltest.RouteGateway)
	_, err = get(t, hc, caracal.WithRequestScopes(g.reader.Context(), "tickets:read", "tickets:write"), g.url(tickets, "/tickets/42"))
	require.ErrorIs(t, err, caracal.ErrAccessDenied)
	var apiErr *caracal.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "sts", apiErr.Service)
	assert.ErrorContains(t, err, `minting a gateway mandate for resource://tickets with scopes "tickets:read tickets:write"`)
	assert.Equal(t, gw, g.st.Count(caracaltest.RouteGateway))

	// Undeclared path on an enforced resource: the Gateway answers 403.
	auditor := g.child(t, "auditor", ledger, "ledger:read")
	lhc := g.c.HTTPClient(caracal.WithScopes("ledger:read"))
	resp, err = get(t, lhc, auditor.Context(), g.url(ledger, "/ledger/entries"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "the declared operation is allowed")
	require.Equal(t, int32(2), g.upstream.Load())
	resp, err = get(t, lhc, auditor.Context(), g.url(ledger, "/ledger/secrets"))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Contains(t, string(body), "operation_not_permitted")

	// Revoked (terminated) session: the STS refuses the mandate (403
	// access_denied, PROTOCOL §3.7: its edge is no longer active); nothing
	// is sent to the Gateway.
	require.NoError(t, g.st.Terminate(g.reader.ID()))
	gw = g.st.Count(caracaltest.RouteGateway)
	_, err = get(t, hc, g.reader.Context(), g.url(tickets, "/tickets/42"))
	require.ErrorIs(t, err, caracal.ErrAccessDenied)
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "sts", apiErr.Service)
	assert.Equal(t, gw, g.st.Count(caracaltest.RouteGateway))

	assert.Equal(t, int32(2), g.upstream.Load(), "only the allowed requests reached an upstream")
}

func TestGovernedEveryRequestMintsAFreshMandate(t *testing.T) {
	g := startGoverned(t)
	hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"))
	mints := g.st.Count(caracaltest.RouteToken)
	for range 3 {
		resp, err := get(t, hc, g.reader.Context(), g.url(tickets, "/tickets/1"))
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "a replayed mandate would be refused 401")
	}
	assert.Equal(t, int32(3), g.upstream.Load())
	assert.GreaterOrEqual(t, g.st.Count(caracaltest.RouteToken)-mints, 3)

	seen := map[string]bool{}
	for _, r := range g.st.Requests() {
		if r.Service == "gateway" {
			a := r.Header.Get("Authorization")
			assert.False(t, seen[a], "a mandate is never presented twice")
			seen[a] = true
		}
	}
}

func TestGovernedRedirectIsReturnedNotFollowed(t *testing.T) {
	g := startGoverned(t)
	h := http.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/tickets/old" {
			http.Redirect(w, r, "/tickets/new", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	g.next.Store(&h)

	hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"))
	resp, err := get(t, hc, g.reader.Context(), g.url(tickets, "/tickets/old"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusFound, resp.StatusCode)
	assert.Equal(t, "/tickets/new", resp.Header.Get("Location"))
	assert.Equal(t, int32(1), g.upstream.Load())

	// A client that follows it anyway goes through the binding again with a
	// fresh mandate (a resent one would be refused as a replay).
	plain := &http.Client{Transport: g.c.Transport(nil, caracal.WithScopes("tickets:read"))}
	resp, err = get(t, plain, g.reader.Context(), g.url(tickets, "/tickets/old"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int32(3), g.upstream.Load())
}

func TestNoBearerOffBinding(t *testing.T) {
	g := startGoverned(t)
	var mu sync.Mutex
	var got []http.Header
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Clone())
		mu.Unlock()
	}))
	defer other.Close()

	for _, p := range []caracal.Propagation{caracal.PropagateGatewayOnly, caracal.PropagateAlways} {
		hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"), caracal.WithPropagation(p))
		resp, err := get(t, hc, g.reader.Context(), other.URL+"/anything")
		require.NoError(t, err)
		_ = resp.Body.Close()
	}
	require.Len(t, got, 2)
	for _, h := range got {
		assert.Empty(t, h.Get("Authorization"))
		assert.Empty(t, h.Get("X-Caracal-Resource"))
	}
	assert.Empty(t, got[0].Get("Baggage"), "gateway-only propagation")
	assert.Contains(t, got[1].Get("Baggage"), "caracal.agent_session="+g.reader.ID())
	assert.Zero(t, g.upstream.Load())
}

func TestGovernedBodiesIntact(t *testing.T) {
	g := startGoverned(t)
	writer := g.child(t, "writer", tickets, "tickets:write")
	hc := g.c.HTTPClient(caracal.WithScopes("tickets:write"))
	payload := strings.Repeat("line of ticket text\n", 2000)
	for name, body := range map[string]io.Reader{
		"with GetBody":    strings.NewReader(payload),
		"without GetBody": io.MultiReader(strings.NewReader(payload)),
	} {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(writer.Context(), http.MethodPost, g.url(tickets, "/tickets"), body)
			require.NoError(t, err)
			before := req.URL.String()
			resp, err := hc.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var echo caracaltest.EchoResponse
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&echo))
			assert.Equal(t, payload, echo.Body)
			assert.Equal(t, before, req.URL.String())
			assert.Empty(t, req.Header.Get("Authorization"), "the caller's request is unchanged")
		})
	}
}

// A RoundTripper may be handed a request without a header map (the
// standard transport answers it with an error); a governed one, or one the
// transport adds the envelope to, is sent with the headers it needs, and the
// caller's request keeps its nil map.
func TestTransportRequestWithoutHeaderMap(t *testing.T) {
	g := startGoverned(t)
	var offBinding atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { offBinding.Add(1) }))
	defer other.Close()
	for _, p := range []caracal.Propagation{caracal.PropagateGatewayOnly, caracal.PropagateAlways} {
		tr := g.c.Transport(nil, caracal.WithScopes("tickets:read"), caracal.WithPropagation(p))
		for _, target := range []string{g.url(tickets, "/tickets/8"), other.URL + "/x"} {
			req, err := http.NewRequestWithContext(g.reader.Context(), http.MethodGet, target, nil)
			require.NoError(t, err)
			req.Header = nil
			var resp *http.Response
			require.NotPanics(t, func() { resp, err = tr.RoundTrip(req) })
			if err == nil {
				_ = resp.Body.Close()
			}
			assert.Nil(t, req.Header, "the caller's request is unchanged")
		}
	}
	assert.Equal(t, int32(2), g.upstream.Load(), "the governed requests reached the upstream")
	assert.Equal(t, int32(1), offBinding.Load(), "with the envelope added, the off-binding request is sent")
}

func TestGovernedParallel(t *testing.T) {
	g := startGoverned(t)
	tr := g.c.Transport(nil, caracal.WithScopes("tickets:read"))
	hc := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for range 5 {
				resp, err := get(t, hc, g.reader.Context(), g.url(tickets, "/tickets/7"))
				if assert.NoError(t, err) {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					assert.Equal(t, http.StatusOK, resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(30), g.upstream.Load())
}

func TestGovernedApprovalFlow(t *testing.T) {
	g := startGoverned(t)
	admin := g.child(t, "admin", tickets, "tickets:read", "tickets:delete")
	hc := g.c.HTTPClient(caracal.WithScopes("tickets:delete"), caracal.WithPrefetch(1))
	req := func() (*http.Response, error) {
		r, _ := http.NewRequestWithContext(admin.Context(), http.MethodDelete, g.url(tickets, "/tickets/9"), nil)
		return hc.Do(r)
	}
	_, err := req()
	var ae *caracal.ApprovalRequiredError
	require.ErrorAs(t, err, &ae)
	require.ErrorIs(t, err, caracal.ErrApprovalRequired)
	assert.Equal(t, tickets, ae.Resource)
	require.NotEmpty(t, ae.ApprovalID)
	require.NotNil(t, ae.Err)
	require.NotEmpty(t, ae.Err.RequestID)
	assert.Contains(t, err.Error(), ae.Err.RequestID, "the STS request id, as every server error's message has it")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	waited := make(chan error, 1)
	go func() { waited <- g.c.WaitApproval(ctx, ae.ApprovalID) }()
	require.NoError(t, g.st.Approve(ae.ApprovalID))
	require.NoError(t, <-waited)

	resp, err := req()
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int32(1), g.upstream.Load())

	// Gated scopes are never prefetched: once the client has stopped its
	// background work, no mint or hold beyond the request path's happened.
	mints, holds := g.st.Count(caracaltest.RouteToken), len(g.st.Approvals())
	require.NoError(t, g.c.Close(context.Background()))
	assert.Equal(t, mints, g.st.Count(caracaltest.RouteToken))
	assert.Equal(t, holds, len(g.st.Approvals()))
}

// The approved retry may go through another prefetching transport of the
// client (an HTTPClient built per call, say): it must not start a pool,
// whose background mint would raise a new hold nobody waits for.
func TestGovernedApprovalRetryThroughAnotherTransport(t *testing.T) {
	g := startGoverned(t)
	admin := g.child(t, "admin", tickets, "tickets:read", "tickets:delete")
	send := func() (*http.Response, error) {
		hc := g.c.HTTPClient(caracal.WithScopes("tickets:delete"), caracal.WithPrefetch(1))
		r, _ := http.NewRequestWithContext(admin.Context(), http.MethodDelete, g.url(tickets, "/tickets/9"), nil)
		return hc.Do(r)
	}
	_, err := send()
	var ae *caracal.ApprovalRequiredError
	require.ErrorAs(t, err, &ae)
	require.NoError(t, g.st.Approve(ae.ApprovalID))
	require.NoError(t, g.c.WaitApproval(t.Context(), ae.ApprovalID))
	resp, err := send()
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// Close waits for every background mint, so the counts are final.
	require.NoError(t, g.c.Close(context.Background()))
	deletes := 0
	for _, r := range g.st.Requests() {
		if r.Pattern == caracaltest.RouteToken && r.Form.Get("scope") == "tickets:delete" {
			deletes++
		}
	}
	assert.Equal(t, 2, deletes, "the held mint and the approved retry, nothing in the background")
	assert.Len(t, g.st.Approvals(), 1)
}

func TestGovernedApprovalRejected(t *testing.T) {
	g := startGoverned(t)
	ae := g.heldDelete(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	waited := make(chan error, 1)
	go func() { waited <- g.c.WaitApproval(ctx, ae.ApprovalID) }()
	require.NoError(t, g.st.Reject(ae.ApprovalID))
	require.ErrorIs(t, <-waited, caracal.ErrApprovalRejected)
	assert.Zero(t, g.upstream.Load())

	polls := g.st.Count(caracaltest.RouteApproval)
	require.NoError(t, g.c.Close(context.Background()))
	assert.ErrorIs(t, g.c.WaitApproval(ctx, ae.ApprovalID), caracal.ErrClosed)
	assert.Equal(t, polls, g.st.Count(caracaltest.RouteApproval))
}

func TestGatewayRequestThroughTheTransport(t *testing.T) {
	g := startGoverned(t)
	hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"))
	req, err := g.c.GatewayRequest(g.reader.Context(), http.MethodGet, tickets, "/tickets/5?x=1", nil)
	require.NoError(t, err)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	var echo caracaltest.EchoResponse
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&echo))
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "/tickets/5", echo.Path)
}

// A resource server behind the Gateway verifies the real resource token and
// sees the calling agent.
func TestMiddlewareBehindTheGateway(t *testing.T) {
	g := startGoverned(t)
	server, err := g.st.NewClient()
	require.NoError(t, err)
	mw, err := server.Middleware(caracal.VerifyTokens(tickets, caracal.VerifyIssuer(g.st.Issuer()), caracal.RequireScopes("tickets:read")))
	require.NoError(t, err)
	type bound struct {
		Zone, App, Session, Edge, Trace string
		Hop                             int
	}
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := caracal.FromContext(r.Context())
		if !ok {
			http.Error(w, "unbound", 500)
			return
		}
		_ = json.NewEncoder(w).Encode(bound{a.ZoneID(), a.ApplicationID(), a.SessionID(), a.DelegationID(), a.TraceID(), a.Hop()})
	}))
	g.next.Store(&h)

	hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"))
	resp, err := get(t, hc, g.reader.Context(), g.url(tickets, "/tickets/1"))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var b bound
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&b))
	assert.Equal(t, g.st.Zone(), b.Zone)
	assert.Equal(t, g.st.Application().ID, b.App)
	assert.Equal(t, g.reader.ID(), b.Session)
	assert.Equal(t, g.reader.Agent().DelegationID(), b.Edge)
	assert.Equal(t, 1, b.Hop)
	assert.Equal(t, g.reader.Agent().TraceID(), b.Trace)

	// The same token class straight from the STS (a gateway mandate, or a
	// lifecycle token) is refused by the middleware.
	direct := httptest.NewServer(h)
	defer direct.Close()
	hdr, err := g.c.Headers(g.reader.Context())
	require.NoError(t, err)
	req, _ := http.NewRequest(http.MethodGet, direct.URL+"/tickets/1", nil)
	req.Header = hdr
	resp2, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp2.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp2.StatusCode)
}

// With prefetch against the stack: every request succeeds with its own
// mandate, and once the client has stopped at most the pool depth of
// mandates were minted and never presented.
func TestGovernedPrefetch(t *testing.T) {
	g := startGoverned(t)
	hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"), caracal.WithPrefetch(1))
	mints := g.st.Count(caracaltest.RouteToken)
	const n = 8
	for range n {
		resp, err := get(t, hc, g.reader.Context(), g.url(tickets, "/tickets/3"))
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	require.NoError(t, g.reader.Close(context.Background()))
	require.NoError(t, g.c.Close(context.Background()))

	bearers := map[string]bool{}
	for _, r := range g.st.Requests() {
		if r.Service == "gateway" {
			a := r.Header.Get("Authorization")
			require.False(t, bearers[a], "a pooled mandate is used once")
			bearers[a] = true
		}
	}
	require.Len(t, bearers, n)
	minted := g.st.Count(caracaltest.RouteToken) - mints
	assert.GreaterOrEqual(t, minted, n)
	assert.LessOrEqual(t, minted, n+1, "at most the pool's depth is wasted")
}

func TestGovernedRequestFromAClosedSession(t *testing.T) {
	g := startGoverned(t)
	hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"))
	s := g.child(t, "reader", tickets, "tickets:read")
	require.NoError(t, s.Close(t.Context()))
	mints := g.st.Count(caracaltest.RouteToken)
	for _, ctx := range []context.Context{s.Context(), context.WithoutCancel(s.Context())} {
		_, err := get(t, hc, ctx, g.url(tickets, "/tickets/1"))
		assert.ErrorIs(t, err, caracal.ErrSessionClosed)
	}
	assert.Equal(t, mints, g.st.Count(caracaltest.RouteToken), "refused before any mint")
	assert.Zero(t, g.upstream.Load())
}
