package caracal_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// behindGateway returns a client of st that reaches the Gateway at
// gatewayURL (a fake one the test controls), closed when the test ends, and
// an agent narrowed to scope on resource://tickets.
func behindGateway(t *testing.T, st *caracaltest.Stack, gatewayURL, scope string) (*caracal.Client, *caracal.Session) {
	t.Helper()
	cfg := st.Config()
	cfg.GatewayURL = gatewayURL
	c, err := caracal.NewFromConfig(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	root, err := c.Spawn(context.Background())
	require.NoError(t, err)
	agent, err := c.Spawn(root.Context(), caracal.WithLabels("writer"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{scope}, "resource://tickets", caracal.Constraints{}, 5*time.Minute)))
	require.NoError(t, err)
	return c, agent
}

// net/http re-sends a replayable request by itself when a pooled connection
// breaks before the response; a governed request must not be one, or the
// re-send would present the same single-use mandate again.
func TestGovernedRequestIsNeverResentByTheBaseTransport(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		body   string
		key    string // Idempotency-Key, which makes any method replayable
		noBody bool   // the request's body is http.NoBody
	}{
		{name: "GET", method: http.MethodGet},
		{name: "GET with http.NoBody", method: http.MethodGet, noBody: true},
		{name: "PUT with a rewindable body", method: http.MethodPut, body: `{"state":"closed"}`},
		{name: "POST with an idempotency key", method: http.MethodPost, body: `{"n":1}`, key: "k-1"},
		{name: "bodiless POST with an idempotency key", method: http.MethodPost, key: "k-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu      sync.Mutex
				bearers []string
				bodies  []string
				framing []string
			)
			// A Gateway that answers the first request, then drops the
			// reused connection after reading the second.
			gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b := make([]byte, 64)
				n, _ := r.Body.Read(b)
				mu.Lock()
				bearers = append(bearers, r.Header.Get("Authorization"))
				bodies = append(bodies, string(b[:n]))
				framing = append(framing, strings.Join(r.TransferEncoding, ","))
				calls := len(bearers)
				mu.Unlock()
				if calls == 2 {
					conn, _, err := http.NewResponseController(w).Hijack()
					if err == nil {
						conn.Close()
					}
					return
				}
				w.WriteHeader(http.StatusNoContent)
			}))
			defer gw.Close()

			st := caracaltest.Start(t)
			c, reader := behindGateway(t, st, gw.URL, "tickets:read")

			base := &http.Transport{}
			defer base.CloseIdleConnections()
			hc := &http.Client{Transport: c.Transport(base, caracal.WithScopes("tickets:read"))}
			do := func() error {
				var body *strings.Reader
				req, err := http.NewRequestWithContext(reader.Context(), tc.method, st.UpstreamURL("resource://tickets")+"/tickets/1", nil)
				require.NoError(t, err)
				if tc.noBody {
					req.Body = http.NoBody
				}
				if tc.body != "" {
					body = strings.NewReader(tc.body)
					req, err = http.NewRequestWithContext(reader.Context(), tc.method, st.UpstreamURL("resource://tickets")+"/tickets/1", body)
					require.NoError(t, err)
				}
				if tc.key != "" {
					req.Header.Set("Idempotency-Key", tc.key)
				}
				resp, err := hc.Do(req)
				if err != nil {
					return err
				}
				resp.Body.Close()
				return nil
			}
			require.NoError(t, do())
			require.Error(t, do(), "the dropped request fails; it is not silently re-sent")

			mu.Lock()
			defer mu.Unlock()
			require.Len(t, bearers, 2, "each governed request reached the Gateway once")
			require.NotEqual(t, bearers[0], bearers[1], "a fresh mandate per request")
			require.Equal(t, []string{tc.body, tc.body}, bodies, "bodies arrive intact")
			if tc.method == http.MethodGet {
				require.Equal(t, []string{"", ""}, framing, "a GET is still sent without a body")
			}
		})
	}
}
