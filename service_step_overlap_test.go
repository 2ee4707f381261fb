package caracal_test

import (
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A background renewal step fired while another one is in progress (a
// renewal by hand re-armed the timer just before the step took the handle's
// lock) renews nothing: the step in progress re-arms the timer when it ends,
// so steps never overlap and no extra heartbeat is sent.
func TestServiceRenewalStepsNeverOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		svc, err := c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		before := st.Count(caracaltest.RouteHeartbeat)
		caracal.FireDuringStep(svc)
		synctest.Wait()
		assert.Equal(t, before, st.Count(caracaltest.RouteHeartbeat), "a second step renewed while one was in progress")
		require.NoError(t, svc.Err())
		require.NoError(t, svc.Close(t.Context()))
	})
}
