package caracal_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// While the STS is down but the aged key set still verifies, only tokens
// under a key the set lacks (a rotation during the outage) are refused: the
// outage's log line says so rather than that every bearer is refused, and
// it is logged again once every bearer is, when the aged keys run out.
func TestMiddlewareKeyOutageLogSaysWhatIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		logged := &logRecorder{}
		c, _ := newClient(t, st)
		rc, _ := newClient(t, st, caracal.WithLogger(slog.New(logged)))
		mw, err := rc.Middleware(caracal.VerifyTokens("resource://tickets"))
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
		outageLines := func() []string {
			var out []string
			for _, r := range logged.all() {
				if strings.Contains(r.Message, "signing keys") {
					out = append(out, r.Message)
				}
			}
			return out
		}
		require.Equal(t, http.StatusNoContent, call())

		st.Inject(caracaltest.RouteJWKS, caracaltest.Fault{Status: http.StatusServiceUnavailable})
		time.Sleep(6 * time.Minute) // the key set ages; the STS cannot be reached
		require.Equal(t, http.StatusNoContent, call(), "the aged key still verifies")
		st.RotateSigningKey()
		require.Equal(t, http.StatusUnauthorized, call(), "a token under the new key is refused")
		lines := outageLines()
		require.Len(t, lines, 1)
		assert.NotContains(t, lines[0], "every bearer is refused", "tokens under the aged keys are still accepted")

		time.Sleep(2 * time.Hour) // the aged keys run out
		require.Equal(t, http.StatusUnauthorized, call())
		require.Equal(t, http.StatusUnauthorized, call())
		lines = outageLines()
		require.Len(t, lines, 2, "every bearer refused now: logged once more")
		assert.Contains(t, lines[1], "every bearer is refused")
		require.NoError(t, rc.Close(t.Context()))
		require.NoError(t, c.Close(t.Context()))
	})
}
