package caracal_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
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
// the handle ends after the Heartbeat checked it was live. Whether a send
// would slip out before the cancel is up to the scheduler, so the race is
// run a few times; each heartbeat is counted as it reaches the transport.
func TestServiceHeartbeatRacingCloseSendsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		var sent atomic.Int32 // heartbeats handed to the transport
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: rtFunc(func(req *http.Request) (*http.Response, error) {
			if strings.HasSuffix(req.URL.Path, "/heartbeat") {
				sent.Add(1)
			}
			return st.Transport().RoundTrip(req)
		})}))
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		const runs = 8
		for range runs {
			svc, err := c.SpawnService(t.Context())
			require.NoError(t, err)
			ctx := hookedDeadline{Context: t.Context(), once: new(sync.Once), hook: func() {
				assert.NoError(t, svc.Close(context.Background()))
			}}
			_, err = svc.Heartbeat(ctx)
			assert.ErrorIs(t, err, caracal.ErrSessionClosed)
			synctest.Wait()
		}
		assert.Zero(t, sent.Load(), "no heartbeat is sent after the retire")
		assert.Empty(t, requestsTo(st, caracaltest.RouteHeartbeat), "no heartbeat after the retire")
		assert.Equal(t, runs, st.Count(caracaltest.RouteRetire))
	})
}
