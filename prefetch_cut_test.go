package caracal_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A response the Gateway cut because the mandate's session was revoked
// tells the client that the mandates pooled for that session are revoked
// too: the next request fails at the mint, as it does without prefetch,
// instead of presenting one of them to the Gateway.
func TestPrefetchPoolDroppedWhenAResponseIsCutByRevocation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := startGoverned(t, caracaltest.InMemory())
		child := g.child(t, "reader", tickets, "tickets:read")
		hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"), caracal.WithPrefetch(2))
		fill := func(s *caracal.Session) {
			resp, err := get(t, hc, s.Context(), g.url(tickets, "/tickets/1"))
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
		}
		fill(child)
		// Another session's pool, which the cut says nothing about.
		fill(g.reader)
		synctest.Wait() // each pool holds two mandates
		require.Equal(t, 2, caracal.PrefetchPools(hc.Transport), "a pool for each session before the cut")

		cut := make(chan struct{})
		h := http.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(strings.Repeat("a", 4096)))
			w.(http.Flusher).Flush()
			<-cut
			_ = g.st.Terminate(child.ID())
			_, _ = w.Write([]byte(strings.Repeat("b", 4096)))
		}))
		g.next.Store(&h)
		resp, err := get(t, hc, child.Context(), g.url(tickets, "/tickets/stream"))
		require.NoError(t, err)
		synctest.Wait() // the pool is full again before the revocation
		close(cut)
		_, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		synctest.Wait()
		g.next.Store(nil)

		gateway := g.st.Count(caracaltest.RouteGateway)
		resp, err = get(t, hc, child.Context(), g.url(tickets, "/tickets/1"))
		if resp != nil {
			_ = resp.Body.Close()
		}
		require.ErrorIs(t, err, caracal.ErrAccessDenied)
		assert.Equal(t, gateway, g.st.Count(caracaltest.RouteGateway), "nothing reaches the Gateway")
		synctest.Wait()
		assert.Equal(t, 1, caracal.PrefetchPools(hc.Transport), "only the other session's pool is left")
	})
}
