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

// A service whose lease ran out closes with its own Context, which ended
// with the loss: that is no reason to give up the retire, which must be done
// when Close returns (a worker exits right after, and a suspended session
// nobody retires stays live at the Coordinator).
func TestServiceLostClosesWithItsOwnContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		svc, err := c.SpawnService(t.Context())
		require.NoError(t, err)
		child, err := c.Spawn(svc.Context())
		require.NoError(t, err)

		time.Sleep(121 * time.Second)
		synctest.Wait()
		require.ErrorIs(t, svc.Err(), caracal.ErrLeaseExpired)
		retires := st.Count(caracaltest.RouteRetire)

		require.NoError(t, child.Close(child.Context()))
		require.NoError(t, svc.Close(svc.Context()))
		assert.Equal(t, retires+2, st.Count(caracaltest.RouteRetire))
		info, ok := st.SessionInfo(svc.ID())
		require.True(t, ok)
		assert.Equal(t, "terminated", info.Status)
	})
}
