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

// A SpawnService repeated with the same key after the first one's lease ran
// out replays a suspended session, whose lease cannot be taken. The session
// is left suspended, not retired, so that it can be resumed and the same
// SpawnService then takes it over.
func TestServiceReplayOfSuspendedSessionKeepsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		first, err := c.SpawnService(t.Context(), caracal.WithIdempotencyKey("billing-worker-1"))
		require.NoError(t, err)
		id := first.ID()
		time.Sleep(5 * time.Minute) // nothing renews
		st.Sweep()
		info, _ := st.SessionInfo(id)
		require.Equal(t, "suspended", info.Status)
		require.ErrorIs(t, first.Err(), caracal.ErrLeaseExpired)

		_, err = c.SpawnService(t.Context(), caracal.WithIdempotencyKey("billing-worker-1"))
		require.ErrorIs(t, err, caracal.ErrSuspended)
		assert.Zero(t, st.Count(caracaltest.RouteRetire), "the session is not this call's to retire")
		info, _ = st.SessionInfo(id)
		assert.Equal(t, "suspended", info.Status)

		_, err = c.Resume(t.Context(), id)
		require.NoError(t, err)
		svc, err := c.SpawnService(t.Context(), caracal.WithIdempotencyKey("billing-worker-1"))
		require.NoError(t, err)
		assert.Equal(t, id, svc.ID())
		require.NoError(t, svc.Close(t.Context()))
	})
}

// A SpawnService repeated with the caller's key replays a session the first
// call's handle still holds. When the lease cannot be taken over for a
// transient reason, the session is the first handle's: it is left running,
// not retired from under that handle with the generation it still holds.
func TestServiceReplayWhoseLeaseFailsLeavesTheHolder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		first, err := c.SpawnService(t.Context(), caracal.WithIdempotencyKey("billing-worker-1"), caracal.HeartbeatInterval(10*time.Second))
		require.NoError(t, err)

		st.Inject(caracaltest.RouteLease, caracaltest.Fault{Status: 503, Times: 1})
		_, err = c.SpawnService(t.Context(), caracal.WithIdempotencyKey("billing-worker-1"))
		require.Error(t, err)
		assert.Contains(t, err.Error(), first.ID())
		assert.Zero(t, st.Count(caracaltest.RouteRetire), "the session is the first handle's")
		info, _ := st.SessionInfo(first.ID())
		assert.Equal(t, "active", info.Status)

		time.Sleep(time.Minute)
		synctest.Wait()
		require.NoError(t, first.Err(), "the first handle keeps renewing its session")
		require.NoError(t, first.Close(t.Context()))
	})
}

// A SpawnService whose first answer was lost and whose retry replays the
// session under the generated key holds the only way to that session. When
// the lease cannot be taken over, the session is retired, not left to run
// out its lease and stay suspended.
func TestServiceReplayUnderAGeneratedKeyWhoseLeaseFailsIsRetired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		lost := &lostAnswer{base: st.Transport()}
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: lost}))
		require.NoError(t, err)
		st.Inject(caracaltest.RouteLease, caracaltest.Fault{Status: http.StatusServiceUnavailable, Times: 1})
		_, err = c.SpawnService(t.Context())
		require.Error(t, err)
		require.NotEmpty(t, lost.lost)
		assert.Contains(t, err.Error(), lost.lost)
		assert.Equal(t, 1, st.Count(caracaltest.RouteLease), "the replay's lease acquire was refused")

		require.NoError(t, c.Close(t.Context()))
		info, ok := st.SessionInfo(lost.lost)
		require.True(t, ok)
		assert.Equal(t, "terminated", info.Status, "the session nobody holds was retired")
	})
}
