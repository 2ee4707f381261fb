package caracal_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A Close that finds the close sequence claimed by another closer still
// returns only once the handle ended (Done closed), also by a ctx already
// done: nothing renews, and no loss is reported, after any Close returned.
func TestServiceCloseAfterAnotherClaimEndsTheHandle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient()
		require.NoError(t, err)
		svc, err := c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)

		claimed, finish := caracal.ClaimServiceClose(svc)
		require.True(t, claimed)
		gone, cancel := context.WithCancel(context.Background())
		cancel()
		returned := make(chan struct{})
		go func() {
			defer close(returned)
			_ = svc.Close(gone)
			select {
			case <-svc.Done():
			default:
				t.Error("Close returned while the handle is live")
			}
		}()
		synctest.Wait()
		finish()
		<-returned
		assert.ErrorIs(t, svc.Err(), caracal.ErrSessionClosed)
		require.NoError(t, c.Close(context.Background()))
	})
}
