package caracal_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A signing-key outage that ended is over even when no token verified
// between it and the next one (every token that came was refused for
// another reason, here a scope it lacks): the next outage is logged too.
func TestMiddlewareKeyOutageLoggedAgainAfterRefusedTokens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		logged := &logRecorder{}
		c, _ := newClient(t, st)
		rc, _ := newClient(t, st, caracal.WithLogger(slog.New(logged)))
		mw, err := rc.Middleware(caracal.VerifyTokens("resource://tickets", caracal.RequireScopes("tickets:write")))
		require.NoError(t, err)
		var got seen
		require.NoError(t, st.SetUpstream("resource://tickets", mw(got.handler())))
		hc := c.HTTPClient(caracal.WithScopes("tickets:read"))
		call := func() int {
			_, reader := narrowReader(t, c, caracal.Constraints{}, "reader")
			req, err := http.NewRequestWithContext(reader.Context(), http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets/1", nil)
			require.NoError(t, err)
			resp, err := hc.Do(req)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			return resp.StatusCode
		}
		outages := func() int {
			n := 0
			for _, r := range logged.all() {
				if r.Level == slog.LevelWarn && strings.Contains(r.Message, "signing keys") {
					n++
				}
			}
			return n
		}

		st.Inject(caracaltest.RouteJWKS, caracaltest.Fault{Status: http.StatusServiceUnavailable})
		require.Equal(t, http.StatusUnauthorized, call())
		require.Equal(t, 1, outages())

		st.ClearFaults()
		time.Sleep(time.Minute) // past the refetch pause after a failed fetch
		require.Equal(t, http.StatusForbidden, call(), "the keys are back; the token lacks the scope")
		require.Equal(t, 1, outages())

		st.Inject(caracaltest.RouteJWKS, caracaltest.Fault{Status: http.StatusServiceUnavailable})
		time.Sleep(2 * time.Hour) // the fetched keys run out
		require.Equal(t, http.StatusUnauthorized, call())
		require.Equal(t, 2, outages(), "a second outage is logged")
		require.Zero(t, got.calls.Load())
		require.NoError(t, rc.Close(t.Context()))
		require.NoError(t, c.Close(t.Context()))
	})
}
