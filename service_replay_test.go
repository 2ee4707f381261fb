package caracal_test

import (
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
