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
