package caracal_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A request that names its resource asks to be governed. When it cannot go
// through the Gateway, it fails before anything is sent, instead of
// reaching the upstream as it is.
func TestNamedResourceThatCannotBeRoutedIsNotSent(t *testing.T) {
	g := startGoverned(t)
	hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"))
	cfg := g.st.Config()
	cfg.GatewayURL, cfg.Bindings = "", nil
	noGateway, err := caracal.NewFromConfig(cfg, g.st.ClientOptions()...)
	require.NoError(t, err)
	defer noGateway.Close(context.Background())
	mints := g.st.Count(caracaltest.RouteToken)

	for name, tc := range map[string]struct {
		hc   *http.Client
		path string
		want string
	}{
		"no gateway URL": {noGateway.HTTPClient(caracal.WithScopes("tickets:read")), "/tickets/1", "no Gateway URL is configured"},
		"dot segment":    {hc, "/a/%2e%2e/tickets/1", "dot segment"},
	} {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(g.reader.Context(), http.MethodGet, g.url(tickets, tc.path), nil)
			require.NoError(t, err)
			req.Header.Set("X-Caracal-Resource", tickets)
			resp, err := tc.hc.Do(req)
			if err == nil {
				_ = resp.Body.Close()
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
	assert.Zero(t, g.upstream.Load(), "nothing reached the upstream")
	assert.Equal(t, mints, g.st.Count(caracaltest.RouteToken), "nothing was minted")
}

// With X-Caracal-Resource, the binding prefix is removed from the path as a
// plain string (PROTOCOL §8.1 step 3). When what is left is a dot segment,
// the Gateway would refuse the request as traversal (§8.2 row 9): it is
// refused before anything is minted or sent.
func TestNamedResourceWhosePrefixLeavesADotSegmentIsNotSent(t *testing.T) {
	g := startGoverned(t)
	cfg := g.st.Config()
	cfg.Bindings = []caracal.ResourceBinding{{ResourceID: tickets, UpstreamPrefix: g.url(tickets, "/api")}}
	c, err := caracal.NewFromConfig(cfg, g.st.ClientOptions()...)
	require.NoError(t, err)
	defer c.Close(context.Background())
	root, err := c.Spawn(context.Background())
	require.NoError(t, err)
	reader, err := c.Spawn(root.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, tickets, caracal.Constraints{}, 10*time.Minute)))
	require.NoError(t, err)
	hc := c.HTTPClient(caracal.WithScopes("tickets:read"))
	mints, sent := g.st.Count(caracaltest.RouteToken), g.st.Count(caracaltest.RouteGateway)

	for _, path := range []string{"/api..", "/api./x", "/api%2e/x", "/api%252E%252e/x"} {
		req, err := http.NewRequestWithContext(reader.Context(), http.MethodGet, g.url(tickets, path), nil)
		require.NoError(t, err)
		req.Header.Set("X-Caracal-Resource", tickets)
		resp, err := hc.Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		require.ErrorContains(t, err, "dot segment", path)
	}
	assert.Zero(t, g.upstream.Load(), "nothing reached the upstream")
	assert.Equal(t, sent, g.st.Count(caracaltest.RouteGateway), "nothing was sent to the Gateway")
	assert.Equal(t, mints, g.st.Count(caracaltest.RouteToken), "nothing was minted")
}
