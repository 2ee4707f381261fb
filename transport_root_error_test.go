package caracal_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A Gateway request with scopes from a session that holds no delegation edge
// (a root session) is refused before any call with an error a caller can
// match: ErrInvalidGrant, as the other local refusals of a grant.
func TestGatewayRequestFromRootSessionIsInvalidGrant(t *testing.T) {
	st := caracaltest.Start(t)
	c, err := st.NewClient()
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(t.Context()) })
	root, err := c.Spawn(t.Context(), caracal.WithLabels("reader"))
	require.NoError(t, err)

	before := st.Count(caracaltest.RouteToken)
	req, err := http.NewRequestWithContext(root.Context(), http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets", nil)
	require.NoError(t, err)
	_, err = c.HTTPClient(caracal.WithScopes("tickets:read")).Do(req)
	require.Error(t, err)
	assert.ErrorIs(t, err, caracal.ErrInvalidGrant)
	assert.Contains(t, err.Error(), "holds no delegation edge")
	assert.Equal(t, before, st.Count(caracaltest.RouteToken), "no mint was asked for")
}
