package caracal_test

import (
	"context"
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

// readerUnderCancel spawns, inside a synctest bubble, a reader session
// narrowed to tickets:read under a context the returned cancel ends, and
// a prefetching client of the given depth; get sends one governed GET from
// the reader's context and requires a 200.
func readerUnderCancel(t *testing.T, depth int) (st *caracaltest.Stack, hc *http.Client, get func(), cancel context.CancelFunc) {
	t.Helper()
	st = caracaltest.Start(t, caracaltest.InMemory())
	c, err := st.NewClient()
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close(context.Background())) })
	root, err := c.Spawn(t.Context())
	require.NoError(t, err)
	spawnCtx, cancel := context.WithCancel(root.Context())
	reader, err := c.Spawn(spawnCtx, caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Hour)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = reader.Close(context.Background()) })

	hc = c.HTTPClient(caracal.WithScopes("tickets:read"), caracal.WithPrefetch(depth))
	get = func() {
		t.Helper()
		req, err := http.NewRequestWithContext(reader.Context(), http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets/1", nil)
		require.NoError(t, err)
		resp, err := hc.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	return st, hc, get, cancel
}

// A session's mandate pool is dropped when the session's Context ends (the
// context it was spawned with was cancelled), not kept until it idles out.
func TestPrefetchPoolDroppedWhenTheSessionContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, hc, get, cancel := readerUnderCancel(t, 1)
		get()
		synctest.Wait()
		require.Equal(t, 1, caracal.PrefetchPools(hc.Transport))

		cancel()
		synctest.Wait()
		assert.Zero(t, caracal.PrefetchPools(hc.Transport), "the pool is dropped with the session's Context")
	})
}

// A refill that completes after the session's Context ended is the pool's
// last mint: the worker does not mint again to fill the pool up to its
// depth, it drops the pool.
func TestPrefetchMintsNoMoreAfterTheSessionContextEndsDuringARefill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, hc, get, cancel := readerUnderCancel(t, 2)
		get()
		synctest.Wait() // the pool is full: two mandates
		st.Inject(caracaltest.RouteToken, caracaltest.Fault{Delay: 5 * time.Second, Times: 10})
		get()
		get()
		synctest.Wait() // the pool is empty and one refill is held at the STS
		// A request is counted when answered: the held refill is not yet.
		mints := st.Count(caracaltest.RouteToken)

		cancel()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		assert.Equal(t, mints+1, st.Count(caracaltest.RouteToken), "the refill in flight, and no mint after it")
		assert.Zero(t, caracal.PrefetchPools(hc.Transport))
	})
}
