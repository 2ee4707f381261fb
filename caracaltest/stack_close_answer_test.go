package caracaltest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// roundTrip sends a GET to url through hc and reports what came back: the
// status and body, or the transport error.
func roundTrip(hc *http.Client, url string) <-chan string {
	out := make(chan string, 1)
	go func() {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err != nil {
			out <- ""
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out <- resp.Status + " " + string(b)
	}()
	return out
}

// TestCloseAnswersNoHeldRequest: a request the stack holds (an injected
// Delay, an approval long poll, an upstream waiting on its context) when
// Close runs ends with a transport error, not with an empty 200 that a
// client would take for a success.
func TestCloseAnswersNoHeldRequest(t *testing.T) {
	for _, route := range []string{caracaltest.RouteJWKS, caracaltest.RouteGateway} {
		t.Run("delay on "+route, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := caracaltest.Start(t, caracaltest.InMemory())
				s.Inject(route, caracaltest.Fault{Delay: time.Hour})
				u := s.STSURL() + "/.well-known/jwks.json"
				if route == caracaltest.RouteGateway {
					u = s.GatewayURL() + "/tickets/1"
				}
				got := roundTrip(s.HTTPClient(), u)
				synctest.Wait()
				require.NoError(t, s.Close())
				assert.Empty(t, <-got, "held by a Delay when the stack closed")
			})
		})
	}
	t.Run("approval wait", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := caracaltest.Start(t, caracaltest.InMemory())
			c, err := s.NewClient()
			require.NoError(t, err)
			root, err := c.Spawn(t.Context())
			require.NoError(t, err)
			admin, err := c.Spawn(root.Context(), caracal.WithLabels("admin"),
				caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:delete"}, tickets, caracal.Constraints{}, time.Hour)))
			require.NoError(t, err)
			req, _ := http.NewRequestWithContext(admin.Context(), http.MethodDelete, s.UpstreamURL(tickets)+"/tickets/1", nil)
			_, err = c.HTTPClient(caracal.WithScopes("tickets:delete")).Do(req)
			var held *caracal.ApprovalRequiredError
			require.True(t, errors.As(err, &held), "%v", err)

			got := roundTrip(s.HTTPClient(), s.STSURL()+"/approvals/"+held.ApprovalID+"?wait=60")
			synctest.Wait()
			require.NoError(t, s.Close())
			assert.Empty(t, <-got, "an approval long poll when the stack closed")
			_ = c.Close(context.Background())
		})
	})
	t.Run("upstream in memory", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			entered := make(chan struct{})
			s := caracaltest.Start(t, caracaltest.InMemory(), caracaltest.WithResource(parkingResource(entered)))
			got := roundTrip(s.HTTPClient(), s.UpstreamURL(parking)+"/wait")
			<-entered
			require.NoError(t, s.Close())
			assert.Empty(t, <-got, "an upstream request waiting on its context when the stack closed")
		})
	})
	t.Run("upstream over loopback", func(t *testing.T) {
		entered := make(chan struct{})
		s := caracaltest.Start(t, caracaltest.WithResource(parkingResource(entered)))
		tr := &http.Transport{}
		t.Cleanup(tr.CloseIdleConnections)
		got := roundTrip(&http.Client{Transport: tr}, s.UpstreamURL(parking)+"/wait")
		<-entered
		require.NoError(t, s.Close())
		assert.Empty(t, <-got, "an upstream request waiting on its context when the stack closed")
	})
}
