package caracal_test

import (
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A successful renewal resets the backoff: the first retry after a later
// failure comes within a second, as after the first failure ever, not after
// the longer delay the earlier run of failures had reached.
func TestServiceBackoffRestartsAfterARenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		svc, err := c.SpawnService(t.Context(), caracal.HeartbeatInterval(30*time.Second))
		require.NoError(t, err)
		// The renewal due at 30 s fails four times (backoff up to 8 s), the
		// fifth attempt renews.
		st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Status: http.StatusServiceUnavailable, Times: 4})
		time.Sleep(50 * time.Second)
		synctest.Wait()
		hb := requestsTo(st, caracaltest.RouteHeartbeat)
		require.Len(t, hb, 5)
		require.Equal(t, http.StatusOK, hb[4].Status)

		st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Status: http.StatusServiceUnavailable, Times: 1})
		time.Sleep(time.Until(hb[4].At.Add(35 * time.Second)))
		synctest.Wait()
		hb = requestsTo(st, caracaltest.RouteHeartbeat)
		require.Len(t, hb, 7)
		assert.Equal(t, http.StatusServiceUnavailable, hb[5].Status)
		assert.Equal(t, http.StatusOK, hb[6].Status)
		assert.LessOrEqual(t, hb[6].At.Sub(hb[5].At), time.Second, "the first retry after a renewal waits at most BackoffBase")
		require.NoError(t, svc.Err())
		require.NoError(t, svc.Close(t.Context()))
	})
}
