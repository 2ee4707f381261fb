package caracal_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// hookedDeadline runs hook the first time its Deadline is asked for: when a
// call derives its own timeout from it, after the call's first checks.
type hookedDeadline struct {
	context.Context
	once *sync.Once
	hook func()
}

func (c hookedDeadline) Deadline() (time.Time, bool) {
	c.once.Do(c.hook)
	return c.Context.Deadline()
}

// A Heartbeat racing Close sends nothing once the handle has ended, even when
// the handle ends after the Heartbeat checked it was live.
func TestServiceHeartbeatRacingCloseSendsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		svc, err := c.SpawnService(t.Context())
		require.NoError(t, err)
		ctx := hookedDeadline{Context: t.Context(), once: new(sync.Once), hook: func() {
			assert.NoError(t, svc.Close(context.Background()))
		}}
		_, err = svc.Heartbeat(ctx)
		assert.ErrorIs(t, err, caracal.ErrSessionClosed)
		synctest.Wait()
		assert.Empty(t, requestsTo(st, caracaltest.RouteHeartbeat), "no heartbeat after the retire")
		assert.Equal(t, 1, st.Count(caracaltest.RouteRetire))
	})
}
