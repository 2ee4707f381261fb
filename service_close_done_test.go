package caracal_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// Close given a context that is already done returns at once, but the handle
// has ended by then: nothing is renewed after Close returns and a loss seen
// afterwards is no loss of this handle (no OnLeaseLost).
func TestServiceCloseWithDoneContextEndsTheHandleFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		var lost atomic.Int32
		svc, err := c.SpawnService(t.Context(), caracal.OnLeaseLost(func(error) { lost.Add(1) }))
		require.NoError(t, err)

		// The retire takes a second of the bubble's time, so that Close
		// returns by its ctx, before the retire ends.
		st.Inject(caracaltest.RouteRetire, caracaltest.Fault{Delay: time.Second, Times: 1})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		assert.ErrorIs(t, svc.Close(ctx), context.Canceled)
		assert.True(t, closed(svc.Done()), "the handle ended before Close returned")
		assert.ErrorIs(t, svc.Err(), caracal.ErrSessionClosed)
		_, err = svc.Heartbeat(t.Context())
		assert.ErrorIs(t, err, caracal.ErrSessionClosed)

		time.Sleep(time.Second) // the retire ends
		synctest.Wait()
		assert.Zero(t, st.Count(caracaltest.RouteHeartbeat), "no heartbeat after Close")
		assert.Equal(t, 1, st.Count(caracaltest.RouteRetire))
		assert.Zero(t, lost.Load())
		require.NoError(t, svc.Close(t.Context()))
	})
}
