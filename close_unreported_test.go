package caracal_test

import (
	"context"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A Session.Close that returned by its ctx's deadline leaves the retire to
// the background; when that retire fails after the Close returned, nobody
// has heard of it yet, so Client.Close reports it, also once it is over.
func TestClientCloseReportsBackgroundRetireFailedEarlier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c, s := hangingRetire(t)

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		require.ErrorIs(t, s.Close(ctx), context.DeadlineExceeded)
		time.Sleep(time.Minute) // fake time: the background retire gave up
		synctest.Wait()
		st.ClearFaults()

		info, _ := st.SessionInfo(s.ID())
		require.Equal(t, "active", info.Status)
		err := c.Close(context.Background())
		require.Error(t, err, "the session left running is reported")
		assert.Contains(t, err.Error(), s.ID())
	})
}

// A service whose start context ended is retired as by Close; when that
// retire fails, Client.Close reports the service left running.
func TestClientCloseReportsServiceRetireAfterContextEnded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient()
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		svc, err := c.SpawnService(ctx, caracal.HeartbeatAuto())
		require.NoError(t, err)
		st.Inject(caracaltest.RouteRetire, caracaltest.Fault{Status: 500})

		cancel()
		<-svc.Done()
		time.Sleep(time.Minute) // fake time: the retire and its retries are over
		synctest.Wait()
		st.ClearFaults()

		info, _ := st.SessionInfo(svc.ID())
		require.Equal(t, "active", info.Status)
		err = c.Close(context.Background())
		require.Error(t, err, "the service left running is reported")
		assert.Contains(t, err.Error(), svc.ID())
	})
}

// A handle whose retire failed is kept for Client.Close to report only while
// its session runs: once a twin handle (the same start replayed under its
// idempotency key) retired the session, there is nothing left to report.
func TestClientCloseForgetsFailedRetireATwinRedid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient()
		require.NoError(t, err)
		first, err := c.Spawn(t.Context(), caracal.WithIdempotencyKey("twin"))
		require.NoError(t, err)
		second, err := c.Spawn(t.Context(), caracal.WithIdempotencyKey("twin"))
		require.NoError(t, err)
		require.Equal(t, first.ID(), second.ID())

		st.Inject(caracaltest.RouteRetire, caracaltest.Fault{Status: 500})
		require.Error(t, first.Close(t.Context()))
		st.ClearFaults()
		require.NoError(t, second.Close(t.Context()))

		info, _ := st.SessionInfo(first.ID())
		require.Equal(t, "terminated", info.Status)
		assert.NoError(t, c.Close(context.Background()))
	})
}

// A start waiting its retry pause when Client.Close begins is given up at
// once, and the session it may have started is retired before Close returns,
// as nothing would wait for it later; when that retire fails, Close reports
// the session left running.
func TestClientCloseReportsAStartGivenUpDuringClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, lost, cancel, spawned := spawnInRetryPause(t, st)
		defer cancel()
		require.NotEmpty(t, lost.lost)
		st.Inject(caracaltest.RouteRetire, caracaltest.Fault{Status: http.StatusForbidden, Code: "application_ownership_required"})

		begin := time.Now()
		err := c.Close(context.Background())
		assert.Zero(t, time.Since(begin), "Close does not wait out the retry pause")
		require.Error(t, err, "the session left running is reported")
		assert.Contains(t, err.Error(), lost.lost)
		require.ErrorIs(t, <-spawned, caracal.ErrClosed)
		info, ok := st.SessionInfo(lost.lost)
		require.True(t, ok)
		assert.Equal(t, "active", info.Status)
	})
}
