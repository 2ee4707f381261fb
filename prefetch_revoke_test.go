package caracal_test

import (
	"context"
	"net/http"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A delegation this client revoked no longer yields mandates, and neither
// do the ones under it: a request after the revoke fails at the mint as it
// does without prefetch, instead of presenting a mandate pooled before the
// revoke to the Gateway. Here the session that holds the delegation is
// another client's, so this one cannot end it: only the pool drop stops
// the pooled mandate.
func TestPrefetchPoolDroppedWhenItsDelegationIsRevoked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := startGoverned(t, caracaltest.InMemory())
		c, err := g.st.NewClient()
		require.NoError(t, err)
		hc := c.HTTPClient(caracal.WithScopes("tickets:read"), caracal.WithPrefetch(1))
		resp, err := get(t, hc, g.reader.Context(), g.url(tickets, "/tickets/3"))
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		synctest.Wait() // the pool holds a mandate
		require.Equal(t, 1, caracal.PrefetchPools(hc.Transport))

		require.NoError(t, c.RevokeDelegation(context.Background(), g.reader.Agent().DelegationID()))
		gateway := g.st.Count(caracaltest.RouteGateway)
		resp, err = get(t, hc, g.reader.Context(), g.url(tickets, "/tickets/3"))
		if resp != nil {
			_ = resp.Body.Close()
		}
		require.ErrorIs(t, err, caracal.ErrAccessDenied)
		assert.Equal(t, gateway, g.st.Count(caracaltest.RouteGateway), "nothing reaches the Gateway")
		synctest.Wait()
		assert.Zero(t, caracal.PrefetchPools(hc.Transport))
		require.NoError(t, c.Close(context.Background()))
		require.NoError(t, g.c.Close(context.Background()))
	})
}
