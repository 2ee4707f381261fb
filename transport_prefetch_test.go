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

// An edge whose mandates live too short to pool (its TTL caps theirs) is
// never prefetched: each request mints once, not once on its path and once
// more in a background worker started for it and stopped again.
func TestGovernedPrefetchShortLivedEdge(t *testing.T) {
	g := startGoverned(t)
	brief, err := g.c.Spawn(g.root.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, tickets, caracal.Constraints{}, 60*time.Second)))
	require.NoError(t, err)
	hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"), caracal.WithPrefetch(1))
	mints := g.st.Count(caracaltest.RouteToken)
	const n = 8
	for range n {
		resp, err := get(t, hc, brief.Context(), g.url(tickets, "/tickets/3"))
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	require.NoError(t, g.c.Close(context.Background()))
	assert.Equal(t, n, g.st.Count(caracaltest.RouteToken)-mints, "one mint per request")
}
