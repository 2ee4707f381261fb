package caracal_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A transport whose base is another of the SDK's transports (say, one
// installed as http.DefaultTransport) passes the request the outer one
// governed through as it is: one mandate per request, not one per layer.
func TestStackedTransportsMintOnce(t *testing.T) {
	g := startGoverned(t)
	inner := g.c.Transport(nil, caracal.WithScopes("tickets:read"))
	hc := &http.Client{Transport: g.c.Transport(inner, caracal.WithScopes("tickets:read"))}

	before := g.st.Count(caracaltest.RouteToken)
	resp, err := get(t, hc, g.reader.Context(), g.url(tickets, "/tickets/1"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 1, g.st.Count(caracaltest.RouteToken)-before, "one mandate minted for one request")
	assert.EqualValues(t, 1, g.upstream.Load())
}

// The same when the transport under it belongs to a client configured
// without a Gateway (one that only spawns sessions, say): the request the
// outer transport governed is sent on as it is, not refused as one the inner
// cannot route.
func TestStackedTransportWithoutAGatewayPassesTheRequestOn(t *testing.T) {
	g := startGoverned(t)
	cfg := g.st.Config()
	cfg.GatewayURL, cfg.Bindings = "", nil
	other, err := caracal.NewFromConfig(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = other.Close(context.Background()) })
	inner := other.Transport(nil, caracal.WithScopes("tickets:read"))
	hc := &http.Client{Transport: g.c.Transport(inner, caracal.WithScopes("tickets:read"))}

	resp, err := get(t, hc, g.reader.Context(), g.url(tickets, "/tickets/1"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.EqualValues(t, 1, g.upstream.Load())
}

// Only the request the outer transport sent to the Gateway passes through: a
// request of its own that a RoundTripper between the two makes under the
// same context (a lookup, a refresh) is governed by the inner transport like
// any other, with a mandate of its own.
func TestStackedTransportsGovernASubRequestOfTheLayerBetween(t *testing.T) {
	g := startGoverned(t)
	inner := g.c.Transport(nil, caracal.WithScopes("tickets:read"))
	between := rtFunc(func(r *http.Request) (*http.Response, error) {
		sub, err := http.NewRequestWithContext(r.Context(), http.MethodGet, g.url(tickets, "/tickets/lookup"), nil)
		if err != nil {
			return nil, err
		}
		resp, err := inner.RoundTrip(sub)
		if err != nil {
			return nil, err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("sub-request: %s", resp.Status)
		}
		return inner.RoundTrip(r)
	})
	hc := &http.Client{Transport: g.c.Transport(between, caracal.WithScopes("tickets:read"))}

	gateway := g.st.Count(caracaltest.RouteGateway)
	resp, err := get(t, hc, g.reader.Context(), g.url(tickets, "/tickets/1"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 2, g.st.Count(caracaltest.RouteGateway)-gateway, "both requests went through the Gateway")
	assert.EqualValues(t, 2, g.upstream.Load())
}
