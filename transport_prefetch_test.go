package caracal_test

import (
	"context"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// An edge whose mandates live too short to pool (its TTL caps theirs) is
// never prefetched: each request mints once, not once on its path and once
// more in a background worker started for it and stopped again.
func TestGovernedPrefetchShortLivedEdge(t *testing.T) {
	g := startGoverned(t)
	brief, err := g.c.Spawn(g.root.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, tickets, caracal.Constraints{}, 60*time.Second)))
	require.NoError(t, err)
	hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"), caracal.WithPrefetch(1))
	mints := g.st.Count(caracaltest.RouteToken)
	const n = 8
	for range n {
		resp, err := get(t, hc, brief.Context(), g.url(tickets, "/tickets/3"))
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	require.NoError(t, g.c.Close(context.Background()))
	assert.Equal(t, n, g.st.Count(caracaltest.RouteToken)-mints, "one mint per request")
}

// A mandate's life is measured on the client's clock from when it was
// asked for, not read from its exp on the STS's clock: with the servers 30 s
// ahead, an 80 s mandate read by its exp seems to have 110 s left, enough to
// pool, and is sent from the pool when the Gateway already refuses it
// (under 35 s left). Measured locally it is too short to pool, and every
// request mints a mandate that the Gateway accepts.
func TestGovernedPrefetchUnderClockSkew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := &skewClock{}
		clk.off.Store(int64(30 * time.Second))
		g := startGoverned(t, caracaltest.InMemory(), caracaltest.WithClock(clk))
		// ttl_seconds caps the edge's mandates at 80 s; the edge lives an hour.
		brief, err := g.c.Spawn(g.root.Context(), caracal.WithLabels("reader"),
			caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, tickets,
				caracal.Constraints{ExpiresAt: time.Now().Add(time.Hour)}, 80*time.Second)))
		require.NoError(t, err)
		hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"), caracal.WithPrefetch(1))
		mints := g.st.Count(caracaltest.RouteToken)
		for i := range 3 {
			resp, err := get(t, hc, brief.Context(), g.url(tickets, "/tickets/3"))
			require.NoError(t, err)
			_ = resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, "request %d", i)
			time.Sleep(50 * time.Second)
			synctest.Wait()
		}
		assert.Equal(t, 3, g.st.Count(caracaltest.RouteToken)-mints, "one mint per request, none pooled")
		require.NoError(t, g.c.Close(context.Background()))
	})
}

// A hold met by a transport that does not prefetch counts too: the approved
// retry through a prefetching transport of the client must not start a
// pool, whose background mint would raise a new hold nobody waits for.
func TestGovernedApprovalHeldWithoutPrefetchRetriedWithIt(t *testing.T) {
	g := startGoverned(t)
	admin := g.child(t, "admin", tickets, "tickets:read", "tickets:delete")
	send := func(hc *http.Client) (*http.Response, error) {
		r, _ := http.NewRequestWithContext(admin.Context(), http.MethodDelete, g.url(tickets, "/tickets/9"), nil)
		return hc.Do(r)
	}
	_, err := send(g.c.HTTPClient(caracal.WithScopes("tickets:delete")))
	var ae *caracal.ApprovalRequiredError
	require.ErrorAs(t, err, &ae)
	require.NoError(t, g.st.Approve(ae.ApprovalID))
	require.NoError(t, g.c.WaitApproval(t.Context(), ae.ApprovalID))
	resp, err := send(g.c.HTTPClient(caracal.WithScopes("tickets:delete"), caracal.WithPrefetch(1)))
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// Close waits for every background mint, so the counts are final.
	require.NoError(t, g.c.Close(context.Background()))
	assert.Len(t, g.st.Approvals(), 1, "no hold raised in the background")
}

// A request whose context has already ended is never sent, so it must not
// spend a pooled mandate: each one taken would be replaced by a background
// mint, a mint per failed request where minting on the path makes none.
func TestGovernedPrefetchEndedContextSpendsNoMandate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := startGoverned(t, caracaltest.InMemory())
		hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"), caracal.WithPrefetch(1))
		resp, err := get(t, hc, g.reader.Context(), g.url(tickets, "/tickets/3"))
		require.NoError(t, err)
		_ = resp.Body.Close()
		synctest.Wait() // the pool is filled
		mints := g.st.Count(caracaltest.RouteToken)
		ctx, cancel := context.WithCancel(g.reader.Context())
		cancel()
		for range 5 {
			_, err := get(t, hc, ctx, g.url(tickets, "/tickets/3"))
			require.ErrorIs(t, err, context.Canceled)
			synctest.Wait()
		}
		assert.Equal(t, mints, g.st.Count(caracaltest.RouteToken), "no mint for requests never sent")
		resp, err = get(t, hc, g.reader.Context(), g.url(tickets, "/tickets/3"))
		require.NoError(t, err)
		_ = resp.Body.Close()
		synctest.Wait()
		assert.Equal(t, mints+1, g.st.Count(caracaltest.RouteToken), "the pooled mandate served the next request")
		require.NoError(t, g.c.Close(context.Background()))
	})
}
