package caracal

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/apierr"
	"github.com/caracal-go/caracal/internal/envelope"
	"github.com/caracal-go/caracal/internal/stsclient"
	"github.com/caracal-go/caracal/internal/wire"
)

const (
	testGateway  = "http://gateway.test:8081"
	testUpstream = "http://tickets.test"
)

// unitConfig is a complete client-secret configuration with one binding.
func unitConfig() Config {
	return Config{
		ZoneID:         "zone-test",
		ApplicationID:  "app-test",
		ClientSecret:   "s3cr3t-value",
		STSURL:         "http://sts.test",
		CoordinatorURL: "http://coordinator.test",
		GatewayURL:     testGateway,
		Bindings: []ResourceBinding{
			{ResourceID: "resource://tickets", UpstreamPrefix: testUpstream},
			{ResourceID: "resource://tickets-admin", UpstreamPrefix: testUpstream + "/admin"},
		},
	}
}

func unitClient(t testing.TB, mutate ...func(*Config)) *Client {
	cfg := unitConfig()
	for _, m := range mutate {
		m(&cfg)
	}
	c, err := NewFromConfig(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func unitAgent() *Agent {
	return &Agent{
		zoneID: "zone-test", applicationID: "app-test",
		sessionID: "sess-1", delegationID: "edge-1", parentDelegationID: "edge-0",
		traceID: "5f1c2b3a4d5e6f708192a3b4c5d6e7f8", traceFlags: "01", hop: 1, own: true,
		baggage: []envelope.Member{{Key: "tenant", Value: "acme"}},
	}
}

// fakeMint hands out distinct mandates and records the requests.
type fakeMint struct {
	mu   sync.Mutex
	reqs []stsclient.MintRequest
	n    atomic.Int64
	err  func(stsclient.MintRequest) error
	life time.Duration
	now  func() time.Time
}

func (f *fakeMint) Mint(_ context.Context, r stsclient.MintRequest) (stsclient.Token, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	errf := f.err
	f.mu.Unlock()
	if errf != nil {
		if err := errf(r); err != nil {
			return stsclient.Token{}, err
		}
	}
	n := f.n.Add(1)
	life := f.life
	if life == 0 {
		life = 15 * time.Minute
	}
	now := time.Now
	if f.now != nil {
		now = f.now
	}
	return stsclient.Token{Value: fmt.Sprintf("mandate-%d", n), ExpiresAt: now().Add(life), Use: wire.UseGateway}, nil
}

func (f *fakeMint) count() int { return int(f.n.Load()) }

// recorder is a base RoundTripper that records what it was sent and answers
// with handler.
type recorder struct {
	mu      sync.Mutex
	reqs    []*http.Request
	bodies  []string
	handler func(*http.Request) *http.Response
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body string
	if req.Body != nil {
		b, _ := io.ReadAll(req.Body)
		_ = req.Body.Close()
		body = string(b)
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.bodies = append(r.bodies, body)
	h := r.handler
	r.mu.Unlock()
	if h != nil {
		if resp := h(req); resp != nil {
			return resp, nil
		}
	}
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), Request: req}, nil
}

func (r *recorder) all() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*http.Request(nil), r.reqs...)
}

// closeTracker records whether Close was called.
type closeTracker struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeTracker) Close() error { c.closed.Store(true); return nil }

func snapshot(r *http.Request) string {
	return fmt.Sprintf("%s %s host=%q hdr=%v", r.Method, r.URL.String(), r.Host, r.Header)
}

func TestTransportNonBoundPassesThrough(t *testing.T) {
	c := unitClient(t)
	rec := &recorder{}
	mint := &fakeMint{}
	tr := c.newTransport(rec, []TransportOption{WithScopes("tickets:read")}, mint.Mint)

	req, _ := http.NewRequestWithContext(NewContext(context.Background(), unitAgent()), http.MethodGet, "http://elsewhere.test/x", nil)
	before := snapshot(req)
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	sent := rec.all()
	require.Len(t, sent, 1)
	assert.Same(t, req, sent[0], "a non-bound request goes out untouched")
	assert.Empty(t, sent[0].Header.Get("Authorization"))
	assert.Empty(t, sent[0].Header.Get("Baggage"))
	assert.Equal(t, before, snapshot(req))
	assert.Zero(t, mint.count())

	// A bound URL with a dot segment is not routed (the Gateway would
	// refuse it), so it goes out as it is, without a bearer.
	dot, _ := http.NewRequestWithContext(req.Context(), http.MethodGet, testUpstream+"/a/%2e%2e/admin", nil)
	resp, err = tr.RoundTrip(dot)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Same(t, dot, rec.all()[1])
	assert.Empty(t, dot.Header.Get("Authorization"))
	rec.reqs, rec.bodies = rec.reqs[:1], rec.bodies[:1]

	// PropagateAlways adds the envelope, never a bearer, on a copy.
	always := c.newTransport(rec, []TransportOption{WithScopes("tickets:read"), WithPropagation(PropagateAlways)}, mint.Mint)
	resp, err = always.RoundTrip(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	sent = rec.all()
	out := sent[1]
	assert.NotSame(t, req, out)
	assert.Empty(t, out.Header.Get("Authorization"))
	assert.Contains(t, out.Header.Get("Baggage"), "caracal.agent_session=sess-1")
	assert.Contains(t, out.Header.Get("Traceparent"), "5f1c2b3a4d5e6f708192a3b4c5d6e7f8")
	assert.Equal(t, before, snapshot(req), "the caller's request is unchanged")
	assert.Zero(t, mint.count())
}

func TestTransportGovernedRequest(t *testing.T) {
	c := unitClient(t)
	rec := &recorder{}
	mint := &fakeMint{}
	tr := c.newTransport(rec, []TransportOption{WithScopes("tickets:write", "tickets:read", "tickets:read")}, mint.Mint)

	req, _ := http.NewRequestWithContext(NewContext(context.Background(), unitAgent()), http.MethodGet, testUpstream+"/tickets/42?x=1", nil)
	req.Header.Set("Baggage", "tenant=override,caracal.agent_session=spoofed")
	req.Header.Set("Authorization", "Bearer caller-own")
	before := snapshot(req)
	for range 3 {
		resp, err := tr.RoundTrip(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Same(t, req, resp.Request, "the mandate is not handed back through resp.Request")
	}
	assert.Equal(t, before, snapshot(req), "the caller's request is unchanged")

	sent := rec.all()
	require.Len(t, sent, 3)
	seen := map[string]bool{}
	for _, out := range sent {
		assert.Equal(t, testGateway+"/tickets/42?x=1", out.URL.String())
		assert.Equal(t, "gateway.test:8081", out.Host)
		assert.Equal(t, "resource://tickets", out.Header.Get(wire.HeaderResource))
		bearer := out.Header.Get("Authorization")
		require.True(t, strings.HasPrefix(bearer, "Bearer mandate-"), bearer)
		assert.False(t, seen[bearer], "a mandate is never resent")
		seen[bearer] = true
		bag := out.Header.Get("Baggage")
		assert.Contains(t, bag, "caracal.agent_session=sess-1")
		assert.Contains(t, bag, "caracal.delegation_edge=edge-1")
		assert.Contains(t, bag, "tenant=override")
		assert.NotContains(t, bag, "spoofed")
	}
	require.Equal(t, 3, mint.count())
	assert.Equal(t, stsclient.MintRequest{Resource: "resource://tickets", Scopes: []string{"tickets:read", "tickets:write"}, AgentSessionID: "sess-1", DelegationEdgeID: "edge-1"}, mint.reqs[0])

	// Per-request scopes win.
	ctx := WithRequestScopes(req.Context(), "tickets:delete")
	r2 := req.Clone(ctx)
	resp, err := tr.RoundTrip(r2)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, []string{"tickets:delete"}, mint.reqs[3].Scopes)
}

func TestTransportBodies(t *testing.T) {
	c := unitClient(t)
	rec := &recorder{}
	mint := &fakeMint{}
	tr := c.newTransport(rec, []TransportOption{WithScopes("tickets:write")}, mint.Mint)
	ctx := NewContext(context.Background(), unitAgent())

	payload := strings.Repeat("payload-", 1000)
	// With GetBody (NewRequest sets it for *strings.Reader).
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, testUpstream+"/tickets", strings.NewReader(payload))
	require.NotNil(t, req.GetBody)
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	out := rec.all()[0]
	assert.Equal(t, payload, rec.bodies[0])
	require.Nil(t, out.GetBody, "the base transport cannot rewind and re-send a governed request")
	require.NotNil(t, req.GetBody, "the caller's GetBody survives the rewrite")
	again, err := req.GetBody()
	require.NoError(t, err)
	b, _ := io.ReadAll(again)
	assert.Equal(t, payload, string(b))
	assert.Equal(t, int64(len(payload)), out.ContentLength)

	// Without GetBody (a plain reader).
	body := &closeTracker{Reader: bytes.NewBufferString(payload)}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, testUpstream+"/tickets", body)
	require.Nil(t, req.GetBody)
	resp, err = tr.RoundTrip(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, payload, rec.bodies[1])
	assert.True(t, body.closed.Load())
}

func TestTransportErrorsCloseTheBody(t *testing.T) {
	c := unitClient(t)
	rec := &recorder{}
	denied := &apierr.Error{Service: "sts", Method: "POST", Path: "/oauth/2/token", StatusCode: 403, Code: "access_denied", Description: "requested scopes exceed delegation scopes"}
	mint := &fakeMint{err: func(r stsclient.MintRequest) error {
		switch r.Scopes[0] {
		case "tickets:admin":
			return denied
		case "tickets:delete":
			return &apierr.ApprovalRequiredError{Err: &apierr.Error{Service: "sts", StatusCode: 401, Code: "interaction_required"}, ApprovalID: "ap-1", State: "pending"}
		}
		return nil
	}}
	scoped := c.newTransport(rec, []TransportOption{WithScopes("tickets:read")}, mint.Mint)
	unscoped := c.newTransport(rec, nil, mint.Mint)
	root := unitAgent()
	root.delegationID = ""
	held := WithRequestScopes(NewContext(context.Background(), unitAgent()), "tickets:delete")

	cases := []struct {
		name string
		tr   http.RoundTripper
		ctx  context.Context
		url  string
		want func(t *testing.T, err error)
	}{
		{"no agent", scoped, context.Background(), testUpstream + "/x", func(t *testing.T, err error) {
			require.ErrorIs(t, err, ErrNoSession)
			assert.NotContains(t, err.Error(), "AsApplication", "Headers' advice does not apply to the transport")
		}},
		{"no scopes", unscoped, NewContext(context.Background(), unitAgent()), testUpstream + "/x", func(t *testing.T, err error) { require.ErrorIs(t, err, errNoScopes) }},
		{"root session", scoped, NewContext(context.Background(), root), testUpstream + "/x", func(t *testing.T, err error) { require.ErrorIs(t, err, errNoDelegation) }},
		{"mint denied", scoped, WithRequestScopes(NewContext(context.Background(), unitAgent()), "tickets:admin"), testUpstream + "/x", func(t *testing.T, err error) {
			var e *Error
			require.ErrorAs(t, err, &e)
			require.ErrorIs(t, err, ErrAccessDenied)
		}},
		{"approval", scoped, held, testUpstream + "/x", func(t *testing.T, err error) {
			var ae *ApprovalRequiredError
			require.ErrorAs(t, err, &ae)
			require.ErrorIs(t, err, ErrApprovalRequired)
			assert.Equal(t, "ap-1", ae.ApprovalID)
			assert.Equal(t, "resource://tickets", ae.Resource)
			assert.Equal(t, []string{"tickets:delete"}, ae.Scopes)
			ae.Scopes[0] = "tickets:read" // the hold's scopes are the caller's own
			assert.Equal(t, []string{"tickets:delete"}, held.Value(requestScopesKey{}))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := &closeTracker{Reader: strings.NewReader("secret body")}
			req, _ := http.NewRequestWithContext(tc.ctx, http.MethodPost, tc.url, body)
			_, err := tc.tr.RoundTrip(req)
			tc.want(t, err)
			assert.True(t, body.closed.Load(), "the body is closed on the error path")
		})
	}
	assert.Empty(t, rec.all(), "nothing was sent")

	// A closed client sends nothing either.
	require.NoError(t, c.Close(context.Background()))
	body := &closeTracker{Reader: strings.NewReader("x")}
	req, _ := http.NewRequestWithContext(NewContext(context.Background(), unitAgent()), http.MethodPost, testUpstream+"/x", body)
	_, err := scoped.RoundTrip(req)
	require.ErrorIs(t, err, ErrClosed)
	assert.True(t, body.closed.Load())
}

func TestTransportPinnedGatewayToken(t *testing.T) {
	c := unitClient(t)
	rec := &recorder{}
	tr := c.newTransport(rec, nil, (&fakeMint{}).Mint)
	enc := func(payload string) string {
		return "eyJhbGciOiJFUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".sig"
	}
	for _, tc := range []struct {
		use string
		ok  bool
	}{{"gateway", true}, {"session", false}, {"resource", false}} {
		a := unitAgent()
		a.own = false
		tok := enc(`{"use":"` + tc.use + `"}`)
		a.token = &tok
		a.presented = new(atomic.Bool)
		req, _ := http.NewRequestWithContext(NewContext(context.Background(), a), http.MethodGet, testUpstream+"/x", nil)
		_, err := tr.RoundTrip(req)
		if tc.ok {
			require.NoError(t, err)
			assert.Equal(t, "Bearer "+tok, rec.all()[0].Header.Get("Authorization"))
			// A gateway mandate is good for one request: never sent twice.
			again, _ := http.NewRequestWithContext(NewContext(context.Background(), a), http.MethodGet, testUpstream+"/y", nil)
			_, err = tr.RoundTrip(again)
			require.ErrorIs(t, err, errPinnedPresented)
			assert.Len(t, rec.all(), 1)
		} else {
			require.ErrorIs(t, err, errNoScopes, tc.use)
		}
	}
}

func TestTransportRedirects(t *testing.T) {
	c := unitClient(t)
	mint := &fakeMint{}
	rec := &recorder{handler: func(r *http.Request) *http.Response {
		switch {
		case r.URL.Host == "gateway.test:8081" && r.URL.Path == "/to-other":
			return redirect(r, "http://other.test/landing")
		case r.URL.Host == "gateway.test:8081" && r.URL.Path == "/to-bound":
			return redirect(r, testUpstream+"/landing")
		case r.URL.Host == "elsewhere.test" && r.URL.Path == "/hop":
			return redirect(r, "http://elsewhere.test/landed")
		}
		return nil
	}}
	ctx := NewContext(context.Background(), unitAgent())

	// HTTPClient returns the Gateway's redirect.
	hc := c.HTTPClient(WithScopes("tickets:read"))
	hc.Transport.(*transport).base = rec
	hc.Transport.(*transport).mint = mint.Mint
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, testUpstream+"/to-other", nil)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusFound, resp.StatusCode)
	require.Len(t, rec.all(), 1)

	// Other redirects are followed as usual.
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, "http://elsewhere.test/hop", nil)
	resp, err = hc.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, rec.all(), 3)
	assert.Equal(t, "/landed", rec.all()[2].URL.Path)
	rec.reqs, rec.bodies = rec.reqs[:1], rec.bodies[:1]

	// A client that follows redirects anyway never carries the bearer to
	// another host, and a redirect back into a binding mints afresh.
	plain := &http.Client{Transport: c.newTransport(rec, []TransportOption{WithScopes("tickets:read")}, mint.Mint)}
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, testUpstream+"/to-other", nil)
	resp, err = plain.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	sent := rec.all()
	require.Len(t, sent, 3)
	assert.Equal(t, "other.test", sent[2].URL.Host)
	assert.Empty(t, sent[2].Header.Get("Authorization"), "no bearer on another host")
	assert.Empty(t, sent[2].Header.Get("Baggage"))
	assert.Empty(t, sent[2].Header.Get(wire.HeaderResource))

	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, testUpstream+"/to-bound", nil)
	resp, err = plain.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	sent = rec.all()
	require.Len(t, sent, 5)
	assert.Equal(t, "gateway.test:8081", sent[4].URL.Host)
	assert.NotEqual(t, sent[3].Header.Get("Authorization"), sent[4].Header.Get("Authorization"), "a redirect mints a fresh mandate")
}

func redirect(r *http.Request, loc string) *http.Response {
	return &http.Response{StatusCode: http.StatusFound, Header: http.Header{"Location": {loc}}, Body: http.NoBody, Request: r}
}

func TestTransportConcurrent(t *testing.T) {
	c := unitClient(t)
	rec := &recorder{}
	mint := &fakeMint{}
	tr := c.newTransport(rec, []TransportOption{WithScopes("tickets:read")}, mint.Mint)
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			a := unitAgent()
			a.sessionID = fmt.Sprintf("sess-%d", w)
			ctx := NewContext(context.Background(), a)
			for i := range each {
				u := testUpstream + "/tickets/" + fmt.Sprint(i)
				if i%2 == 1 {
					u = "http://elsewhere.test/" + fmt.Sprint(i)
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPut, u, strings.NewReader("b"))
				resp, err := tr.RoundTrip(req)
				if assert.NoError(t, err) {
					_ = resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	governed := 0
	for _, r := range rec.all() {
		auth := r.Header.Get("Authorization")
		if r.URL.Host == "elsewhere.test" {
			assert.Empty(t, auth)
			continue
		}
		governed++
		assert.False(t, seen[auth])
		seen[auth] = true
		assert.Contains(t, r.Header.Get("Baggage"), "caracal.agent_session=sess-")
	}
	assert.Equal(t, workers*each/2, governed)
	assert.Equal(t, governed, mint.count())
}
