package caracal_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A host outside every binding cannot steer an agent into a governed call:
// its redirect into a binding is never followed with a mandate, so no
// request of the agent's is made with its authority unless the agent made
// it. HTTPClient hands the redirect back to the caller; another client
// following redirects gets an error.
func TestRedirectIntoABindingIsNotGoverned(t *testing.T) {
	g := startGoverned(t)
	target := g.url(tickets, "/tickets/3")
	outside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(outside.Close)

	mints := g.st.Count(caracaltest.RouteToken)
	ctx := g.reader.Context()
	post := func(hc *http.Client) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, outside.URL+"/go", strings.NewReader(`{"close":true}`))
		require.NoError(t, err)
		return hc.Do(req)
	}

	resp, err := post(g.c.HTTPClient(caracal.WithScopes("tickets:read")))
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode, "the redirect is the caller's to follow")

	plain := &http.Client{Transport: g.c.Transport(nil, caracal.WithScopes("tickets:read"))}
	_, err = post(plain)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "redirect")

	assert.Equal(t, mints, g.st.Count(caracaltest.RouteToken), "no mandate minted")
	assert.Zero(t, g.upstream.Load(), "nothing reached the resource")

	// The agent asking for the same URL itself is governed as usual.
	resp, err = get(t, plain, ctx, target)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// stripRequest is a base transport that answers without saying which
// request it sent (Response.Request nil), as a RoundTripper may.
type stripRequest struct{ base http.RoundTripper }

func (s stripRequest) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(req)
	if resp != nil {
		resp.Request = nil
	}
	return resp, err
}

// A redirect into a binding is refused also when the base transport does
// not report the request a response answers: the hop it came from is then
// unknown, which is no reason to follow it with the agent's authority.
func TestRedirectIntoABindingFromAnUnreportedHop(t *testing.T) {
	g := startGoverned(t)
	target := g.url(tickets, "/tickets/3")
	outside := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, http.StatusFound)
	}))
	t.Cleanup(outside.Close)

	mints := g.st.Count(caracaltest.RouteToken)
	base := stripRequest{base: &http.Transport{}}
	plain := &http.Client{Transport: g.c.Transport(base, caracal.WithScopes("tickets:read"))}
	_, err := get(t, plain, g.reader.Context(), outside.URL+"/go")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "redirect")
	assert.Equal(t, mints, g.st.Count(caracaltest.RouteToken), "no mandate minted")
	assert.Zero(t, g.upstream.Load(), "nothing reached the resource")
}

// Redirects outside every binding are followed as the default client
// follows them: ten hops, then an error instead of an eleventh request.
func TestHTTPClientStopsOtherRedirectChainsAfterTen(t *testing.T) {
	g := startGoverned(t)
	var hits atomic.Int32
	loop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, "/again", http.StatusFound)
	}))
	t.Cleanup(loop.Close)

	_, err := get(t, g.c.HTTPClient(caracal.WithScopes("tickets:read")), g.reader.Context(), loop.URL+"/start")
	require.Error(t, err)
	assert.Equal(t, int32(10), hits.Load(), "ten requests, the first and nine redirects")

	hits.Store(0)
	_, err = get(t, &http.Client{}, g.reader.Context(), loop.URL+"/start")
	require.Error(t, err)
	assert.Equal(t, int32(10), hits.Load(), "as many as the default client")
}
