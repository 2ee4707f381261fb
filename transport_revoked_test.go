package caracal_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A streamed response the Gateway cuts because the caller's session was
// ended while it streamed (the X-Caracal-Revoked trailer, PROTOCOL §8.4)
// ends in an error, not in a clean end of body: the part read is not
// the whole answer.
func TestGovernedResponseCutByRevocationEndsInAnError(t *testing.T) {
	for name, opts := range map[string][]caracaltest.Option{"loopback": nil, "in-memory": {caracaltest.InMemory()}} {
		t.Run(name, func(t *testing.T) {
			g := startGoverned(t, opts...)
			child := g.child(t, "reader", tickets, "tickets:read")
			h := http.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte(strings.Repeat("a", 4096)))
				w.(http.Flusher).Flush()
				_ = g.st.Terminate(child.ID())
				_, _ = w.Write([]byte(strings.Repeat("b", 4096)))
			}))
			g.next.Store(&h)

			hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"))
			resp, err := get(t, hc, child.Context(), g.url(tickets, "/tickets/stream"))
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			b, err := io.ReadAll(resp.Body)
			require.ErrorIs(t, err, io.ErrUnexpectedEOF)
			assert.ErrorContains(t, err, "revoked")
			assert.Equal(t, strings.Repeat("a", 4096), string(b), "what arrived before the cut is still read")
			_, err = resp.Body.Read(make([]byte, 1))
			require.ErrorIs(t, err, io.ErrUnexpectedEOF, "and every later read says so too")

			// A response that is not cut ends cleanly.
			g.next.Store(nil)
			resp, err = get(t, hc, g.reader.Context(), g.url(tickets, "/tickets/1"))
			require.NoError(t, err)
			defer resp.Body.Close()
			_, err = io.ReadAll(resp.Body)
			require.NoError(t, err)
		})
	}
}
