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

// A mandate that lives long enough for the Gateway on the servers' clock
// reaches it whichever way the client's clock is off: the 35 s floor is a
// fact about the mandate, not about the client's clock.
func TestMandateLifeCheckIgnoresClockSkew(t *testing.T) {
	for _, off := range []time.Duration{2 * time.Minute, -2 * time.Minute} {
		t.Run(off.String(), func(t *testing.T) {
			clk := &skewClock{}
			clk.off.Store(int64(off))
			g := startGoverned(t, caracaltest.WithClock(clk))
			s, err := g.c.Spawn(g.root.Context(), caracal.WithLabels("reader"),
				caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, tickets, caracal.Constraints{}, 90*time.Second)))
			require.NoError(t, err)
			hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"))

			resp, err := get(t, hc, s.Context(), g.url(tickets, "/tickets/1"))
			require.NoError(t, err, "a mandate living about 90 s on the STS's clock")
			_ = resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode)
		})
	}
}
