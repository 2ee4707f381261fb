package caracal_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// editMints is a client transport that changes, with edit, the form of the
// token exchanges the STS is sent, as a confused STS (or a proxy in front of
// it) may answer one mint with a token minted for another request.
func editMints(base http.RoundTripper, edit func(url.Values)) http.RoundTripper {
	return rtFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/oauth/2/token") {
			return base.RoundTrip(r)
		}
		raw, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			return nil, err
		}
		form, err := url.ParseQuery(string(raw))
		if err != nil {
			return nil, err
		}
		edit(form)
		body := form.Encode()
		r = r.Clone(r.Context())
		r.Body, r.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
		return base.RoundTrip(r)
	})
}

// A mandate the STS answers for another session and edge than the mint
// asked for is refused as an invalid answer: it never reaches the Gateway,
// where the request would act with the other session's authority.
func TestMintAnsweredForAnotherSessionIsNotPresented(t *testing.T) {
	g := startGoverned(t)
	other := g.child(t, "reader", tickets, "tickets:read")
	from, to := g.reader.Agent(), other.Agent()
	refuseMintAnswers(t, g, g.reader.Agent(), func(form url.Values) {
		if form.Get("agent_session_id") == from.SessionID() {
			form.Set("agent_session_id", to.SessionID())
			form.Set("delegation_edge_id", to.DelegationID())
		}
	})
}

// A mint answered with a token of another class (the application's
// lifecycle token) is refused too: that token carries Coordinator
// authority, and must not be sent to the Gateway.
func TestMintAnsweredWithALifecycleTokenIsNotPresented(t *testing.T) {
	g := startGoverned(t)
	refuseMintAnswers(t, g, g.reader.Agent(), func(form url.Values) {
		if form.Has("agent_session_id") {
			form.Del("agent_session_id")
			form.Del("delegation_edge_id")
			form.Set("scope", "agent:lifecycle")
		}
	})
	for _, r := range g.st.Requests() {
		if r.Service == "gateway" {
			t.Errorf("the Gateway was sent %s %s", r.Method, r.Path)
		}
	}
}

// refuseMintAnswers sends a governed request of agent (a session of g's
// application), with and without prefetching, through a client whose token
// exchanges edit changes, and checks that each fails as an invalid answer
// with nothing reaching the upstream.
func refuseMintAnswers(t *testing.T, g *governed, agent *caracal.Agent, edit func(url.Values)) {
	t.Helper()
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	c, err := g.st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: editMints(base, edit)}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })

	// The agent's context, bound into c (a client of the same application).
	ctx := caracal.NewContext(t.Context(), agent)
	for _, prefetch := range []bool{false, true} {
		opts := []caracal.TransportOption{caracal.WithScopes("tickets:read")}
		if prefetch {
			opts = append(opts, caracal.WithPrefetch(2))
		}
		resp, err := get(t, c.HTTPClient(opts...), ctx, g.url(tickets, "/tickets/1"))
		if resp != nil {
			_ = resp.Body.Close()
		}
		require.ErrorIs(t, err, caracal.ErrUnavailable, "prefetch %v", prefetch)
		assert.Zero(t, g.upstream.Load(), "prefetch %v: nothing reached the upstream", prefetch)
	}
}

// The lifecycle exchange answered with a mandate (a single-use Gateway
// token of some session) is refused the same way: Headers would otherwise
// hand that mandate to another service, which could present it at the
// Gateway with the session's authority.
func TestLifecycleExchangeAnsweredWithAMandateIsNotUsed(t *testing.T) {
	g := startGoverned(t)
	reader := g.reader.Agent()
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	c, err := g.st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: editMints(base, func(form url.Values) {
		if !form.Has("agent_session_id") {
			form.Set("agent_session_id", reader.SessionID())
			form.Set("delegation_edge_id", reader.DelegationID())
			form.Set("scope", "tickets:read")
			form["resource"] = []string{tickets}
		}
	})}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })

	h, err := c.Headers(t.Context(), caracal.AsApplication())
	require.ErrorIs(t, err, caracal.ErrUnavailable, "headers %v", h)
	_, err = c.Spawn(t.Context())
	require.ErrorIs(t, err, caracal.ErrUnavailable)
}
