package caracal_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A mandate minted with exactly 35 s of life is not sent: some of its life
// is spent before it arrives, and the Gateway needs more than 35 s left.
// One second more is enough. The servers' clock stands still, so the STS
// mints each mandate for exactly what is left of its delegation.
func TestMandateOfExactlyTheGatewayFloorIsNotSent(t *testing.T) {
	g := startGoverned(t, caracaltest.WithClock(caracaltest.NewFakeClock(time.Now().Truncate(time.Second))))
	narrow := func(ttl time.Duration) *caracal.Session {
		s, err := g.c.Spawn(g.root.Context(), caracal.WithLabels("reader"),
			caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, tickets, caracal.Constraints{}, ttl)))
		require.NoError(t, err)
		return s
	}
	hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"))
	gateway := g.st.Count(caracaltest.RouteGateway)

	resp, err := get(t, hc, narrow(35*time.Second).Context(), g.url(tickets, "/tickets/1"))
	if resp != nil {
		_ = resp.Body.Close()
	}
	require.ErrorIs(t, err, caracal.ErrInvalidGrant)
	assert.Equal(t, gateway, g.st.Count(caracaltest.RouteGateway), "nothing reached the Gateway")

	resp, err = get(t, hc, narrow(36*time.Second).Context(), g.url(tickets, "/tickets/1"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}
