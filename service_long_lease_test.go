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

// A Coordinator that grants a lease of centuries (a deadline that far out,
// or one measured from a last heartbeat that far back) does not make a
// handle eternal: when renewals then fail, the handle still reports its
// lease lost within a day, from the start, a renewal or an attach alike.
func TestServiceLeaseOfCenturiesIsNotEternal(t *testing.T) {
	const centuries = 200 * 365 * 24 * time.Hour
	const day = 24 * time.Hour
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t, caracaltest.WithLease(centuries))

		started, err := c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		assert.False(t, started.Deadline().After(time.Now().Add(day)), "start: deadline %v away", time.Until(started.Deadline()))

		renewed, err := c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		l, err := renewed.Heartbeat(t.Context())
		require.NoError(t, err)
		assert.False(t, l.Deadline.After(time.Now().Add(day)), "renewal: deadline %v away", time.Until(l.Deadline))

		other, err := c.SpawnService(t.Context())
		require.NoError(t, err)
		attached, err := c.AttachService(t.Context(), other.ID(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		assert.False(t, attached.Deadline().After(time.Now().Add(day)), "attach: deadline %v away", time.Until(attached.Deadline()))

		st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Status: 503})
		time.Sleep(day + time.Second)
		synctest.Wait()
		for _, svc := range []*caracal.Service{started, renewed, attached} {
			assert.ErrorIs(t, svc.Err(), caracal.ErrLeaseExpired)
		}
		st.ClearFaults()
		for _, svc := range []*caracal.Service{started, renewed, other, attached} {
			_ = svc.Close(t.Context())
		}
	})
}
