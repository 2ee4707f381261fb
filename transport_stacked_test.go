package caracal_test

import (
	"context"
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
