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

// The Gateway refuses a mandate that expires within 35 s (PROTOCOL §8.2),
// and the STS never mints one that outlives its delegation. A delegation
// that ends sooner than that cannot reach the Gateway: the request fails
// with an error that says why, instead of a 401 from the Gateway.
func TestMandateTooShortForTheGatewayIsNotSent(t *testing.T) {
	g := startGoverned(t)
	short := g.child(t, "reader", tickets, "tickets:read")
	s, err := g.c.Spawn(g.root.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, tickets, caracal.Constraints{}, 20*time.Second)))
	require.NoError(t, err)
	hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"))
	gateway := g.st.Count(caracaltest.RouteGateway)

	resp, err := get(t, hc, s.Context(), g.url(tickets, "/tickets/1"))
	if resp != nil {
		_ = resp.Body.Close()
	}
	require.ErrorIs(t, err, caracal.ErrInvalidGrant)
	// Whole seconds, at most the delegation's 20 (less what the spawn and
	// the mint took, on the real clock).
	assert.Regexp(t, "expires (1[0-9]|20)s after it was minted, and the Gateway requires more than 35s left when it arrives", err.Error())
	assert.Equal(t, gateway, g.st.Count(caracaltest.RouteGateway), "nothing reached the Gateway")

	resp, err = get(t, hc, short.Context(), g.url(tickets, "/tickets/1"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}
