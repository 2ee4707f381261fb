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

// A hold met by one transport of the client drops the mandates every other
// prefetching transport of the client pooled for the same scopes: they were
// minted before the scopes needed an approval, and the next request for
// them must raise its own hold, as it would without prefetch, instead of
// reaching the Gateway with a pooled mandate.
func TestPrefetchHoldDropsOtherTransportsPools(t *testing.T) {
	for name, holder := range map[string][]caracal.TransportOption{
		"prefetching": {caracal.WithScopes("tickets:read"), caracal.WithPrefetch(1)},
		"minting":     {caracal.WithScopes("tickets:read")},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := startGoverned(t, caracaltest.InMemory())
				pooled := g.c.HTTPClient(caracal.WithScopes("tickets:read"), caracal.WithPrefetch(1))
				resp, err := get(t, pooled, g.reader.Context(), g.url(tickets, "/tickets/3"))
				require.NoError(t, err)
				_ = resp.Body.Close()
				require.Equal(t, http.StatusOK, resp.StatusCode)
				synctest.Wait() // the pool holds a mandate
				require.Equal(t, 1, caracal.PrefetchPools(pooled.Transport))

				// The policy now holds these scopes for an approval.
				g.st.Inject(caracaltest.RouteToken, caracaltest.Fault{Status: http.StatusUnauthorized, Code: "interaction_required", Times: 2})
				var ae *caracal.ApprovalRequiredError
				_, err = get(t, g.c.HTTPClient(holder...), g.reader.Context(), g.url(tickets, "/tickets/3"))
				require.ErrorAs(t, err, &ae)
				synctest.Wait()
				assert.Zero(t, caracal.PrefetchPools(pooled.Transport), "the other transport's pool is dropped")

				gateway := g.st.Count(caracaltest.RouteGateway)
				resp, err = get(t, pooled, g.reader.Context(), g.url(tickets, "/tickets/3"))
				if resp != nil {
					_ = resp.Body.Close()
				}
				require.ErrorAs(t, err, &ae, "the request meets the hold")
				assert.Equal(t, gateway, g.st.Count(caracaltest.RouteGateway), "no pooled mandate reaches the Gateway")
				require.NoError(t, g.c.Close(context.Background()))
			})
		})
	}
}
