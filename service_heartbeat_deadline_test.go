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

// A Heartbeat by hand whose call the lease deadline cuts off ends the handle
// and returns why: ErrLeaseExpired, as Err does, not the cut-off call's
// error as if the handle were still live. The call's timeout and the
// deadline timer fire at the same instant, and which is seen first is up to
// the scheduler, so the race is run a few times.
func TestServiceHeartbeatCutOffByTheDeadlineReportsTheLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		const runs = 50
		for i := range runs {
			svc, err := c.SpawnService(t.Context())
			require.NoError(t, err)
			time.Sleep(115 * time.Second)
			st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Delay: time.Hour})
			_, err = svc.Heartbeat(t.Context())
			st.ClearFaults()
			require.ErrorIs(t, svc.Err(), caracal.ErrLeaseExpired, "run %d", i)
			assert.ErrorIs(t, err, caracal.ErrLeaseExpired, "run %d: the ended handle's reason", i)
			assert.Equal(t, svc.Err(), err, "run %d", i)
			require.NoError(t, svc.Close(t.Context()))
		}
	})
}
