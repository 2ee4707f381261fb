package caracal_test

import (
	"context"
	"errors"
	"net/http"
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

func TestServiceCloseDuringInFlightHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		svc, err := c.SpawnService(t.Context(), caracal.HeartbeatInterval(10*time.Second))
		require.NoError(t, err)
		st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Delay: time.Hour})
		time.Sleep(11 * time.Second) // the heartbeat at 10 s hangs
		synctest.Wait()
		require.Zero(t, st.Count(caracaltest.RouteHeartbeat), "the stack records a request when it answers")

		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		require.NoError(t, svc.Close(ctx))
		assert.LessOrEqual(t, time.Since(start), 100*time.Millisecond)
		assert.Equal(t, 1, st.Count(caracaltest.RouteRetire))
		info, _ := st.SessionInfo(svc.ID())
		assert.Equal(t, "terminated", info.Status)
		assert.ErrorIs(t, svc.Err(), caracal.ErrSessionClosed)
		// The hanging heartbeat was abandoned, without an answer.
		hb := requestsTo(st, caracaltest.RouteHeartbeat)
		require.Len(t, hb, 1)
		assert.Zero(t, hb[0].Status)
	})
}

func TestServiceCloseHonoursDeadlineWhenRetireHangs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		svc, err := c.SpawnService(t.Context(), caracal.HeartbeatInterval(10*time.Second))
		require.NoError(t, err)
		st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Delay: time.Hour})
		st.Inject(caracaltest.RouteRetire, caracaltest.Fault{Delay: time.Hour})
		time.Sleep(11 * time.Second)

		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		err = svc.Close(ctx)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "continues in the background", "the error says the retire is still under way")
		assert.Equal(t, 100*time.Millisecond, time.Since(start))

		// The retire goes on, detached, for at most 10 s; a later Close
		// reports its outcome.
		err = svc.Close(t.Context())
		assert.Equal(t, 10*time.Second, time.Since(start))
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "retiring service")
	})
}

func TestServiceClosedByStartContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		ctx, cancel := context.WithCancelCause(t.Context())
		var lost atomic.Int32
		svc, err := c.SpawnService(ctx, caracal.HeartbeatAuto(), caracal.OnLeaseLost(func(error) { lost.Add(1) }))
		require.NoError(t, err)
		time.Sleep(time.Minute)
		stopped := errors.New("shutting down")
		cancel(stopped)
		synctest.Wait()
		assert.True(t, closed(svc.Done()))
		assert.ErrorIs(t, svc.Err(), stopped)
		assert.ErrorIs(t, context.Cause(svc.Context()), stopped)
		assert.Equal(t, 1, st.Count(caracaltest.RouteRetire), "cancelling the start context retires")
		assert.Zero(t, lost.Load(), "a close is not a loss")
		require.NoError(t, svc.Close(context.Background()))
		// The bubble ends only if no goroutine is left behind.
	})
}

func TestClientCloseClosesServices(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		var svcs []*caracal.Service
		for _, opt := range []caracal.SpawnOption{caracal.HeartbeatAuto(), caracal.HeartbeatInterval(5 * time.Second), caracal.WithLabels("manual")} {
			s, err := c.SpawnService(t.Context(), opt)
			require.NoError(t, err)
			svcs = append(svcs, s)
		}
		time.Sleep(time.Minute)
		require.NoError(t, c.Close(t.Context()))
		assert.Equal(t, 3, st.Count(caracaltest.RouteRetire))
		for _, s := range svcs {
			assert.True(t, closed(s.Done()))
			assert.ErrorIs(t, s.Err(), caracal.ErrSessionClosed)
			info, _ := st.SessionInfo(s.ID())
			assert.Equal(t, "terminated", info.Status)
		}
		_, err := c.SpawnService(t.Context())
		assert.ErrorIs(t, err, caracal.ErrClosed)
		_, err = c.AttachService(t.Context(), svcs[0].ID())
		assert.ErrorIs(t, err, caracal.ErrClosed)
	})
}

// TestServiceStress renews, heartbeats and closes many services at once; run
// it with -race.
func TestServiceStress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 100
		st, c := serviceStack(t, caracaltest.WithLimits(caracaltest.Limits{SessionsPerZone: 4 * n, SessionsPerApp: 4 * n}))
		var wg sync.WaitGroup
		svcs := make([]*caracal.Service, n)
		for i := range n {
			wg.Go(func() {
				opt := caracal.HeartbeatAuto()
				if i%3 == 0 {
					opt = caracal.HeartbeatInterval(time.Duration(1+i%7) * time.Second)
				}
				s, err := c.SpawnService(t.Context(), opt)
				if !assert.NoError(t, err) {
					return
				}
				svcs[i] = s
			})
		}
		wg.Wait()
		for i, s := range svcs {
			require.NotNil(t, s, "service %d", i)
		}
		// Readers, manual heartbeats and closers race the loops.
		for i, s := range svcs {
			wg.Go(func() {
				for range 5 {
					time.Sleep(time.Duration(1+i%5) * time.Second)
					_ = s.Deadline()
					_ = s.Generation()
					_ = s.Status()
					_ = s.Err()
					if _, err := s.Heartbeat(t.Context()); err != nil {
						assert.ErrorIs(t, err, caracal.ErrSessionClosed)
					}
				}
			})
			if i%2 == 0 {
				wg.Go(func() {
					time.Sleep(time.Duration(i%11) * time.Second)
					assert.NoError(t, s.Close(t.Context()))
				})
				wg.Go(func() {
					time.Sleep(time.Duration(i%11) * time.Second)
					assert.NoError(t, s.Close(t.Context()))
				})
			}
		}
		time.Sleep(3 * time.Second)
		require.NoError(t, c.Close(t.Context()))
		wg.Wait()
		for _, s := range svcs {
			assert.True(t, closed(s.Done()))
			assert.ErrorIs(t, s.Err(), caracal.ErrSessionClosed)
			info, _ := st.SessionInfo(s.ID())
			assert.Equal(t, "terminated", info.Status)
		}
		for _, r := range requestsTo(st, caracaltest.RouteHeartbeat) {
			// A manual heartbeat cancelled by Close may still reach the
			// Coordinator after the retire.
			assert.Contains(t, []int{http.StatusOK, http.StatusConflict}, r.Status)
		}
	})
}

func TestServiceCloseCancelsManualHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		svc, err := c.SpawnService(t.Context())
		require.NoError(t, err)
		st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Delay: time.Hour})
		hbErr := make(chan error, 1)
		go func() {
			_, err := svc.Heartbeat(t.Context())
			hbErr <- err
		}()
		time.Sleep(time.Second)
		synctest.Wait()

		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		require.NoError(t, svc.Close(ctx))
		assert.ErrorIs(t, <-hbErr, caracal.ErrSessionClosed)
		assert.Zero(t, time.Since(start), "Close cancels the heartbeat in flight")
		assert.Equal(t, 1, st.Count(caracaltest.RouteRetire))
	})
}

func TestServiceOnLeaseLostNeverBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		release := make(chan struct{})
		var svc *caracal.Service
		ready := make(chan struct{})
		closedFromCallback := make(chan error, 1)
		svc, err := c.SpawnService(t.Context(), caracal.HeartbeatInterval(10*time.Second),
			caracal.OnLeaseLost(func(error) {
				<-ready
				<-release // a slow callback
				closedFromCallback <- svc.Close(context.Background())
			}))
		require.NoError(t, err)
		close(ready)
		st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Status: http.StatusConflict, Code: "session_lease_fenced"})
		<-svc.Done()

		// The handle ended and Close completes while the callback is stuck.
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		require.NoError(t, svc.Close(ctx))
		assert.NoError(t, ctx.Err())

		// The callback may close the handle itself.
		close(release)
		assert.NoError(t, <-closedFromCallback)
		assert.Zero(t, st.Count(caracaltest.RouteRetire), "a fenced handle retires nothing")
	})
}

// TestServiceSpawnRacesClientClose starts services while the client closes:
// every session that was started is retired, whether its SpawnService
// returned it or failed with ErrClosed.
func TestServiceSpawnRacesClientClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t, caracaltest.WithLimits(caracaltest.Limits{SessionsPerZone: 1000, SessionsPerApp: 1000}))
		var wg sync.WaitGroup
		var returned, refused atomic.Int32
		for i := range 20 {
			wg.Go(func() {
				for {
					s, err := c.SpawnService(t.Context(), caracal.HeartbeatInterval(time.Duration(1+i%3)*time.Second))
					if err != nil {
						assert.ErrorIs(t, err, caracal.ErrClosed)
						refused.Add(1)
						return
					}
					returned.Add(1)
					time.Sleep(time.Duration(1+i%4) * time.Millisecond)
					_ = s
				}
			})
		}
		time.Sleep(5 * time.Millisecond)
		require.NoError(t, c.Close(t.Context()))
		wg.Wait()
		synctest.Wait()
		assert.Positive(t, returned.Load())
		assert.Equal(t, int32(20), refused.Load())
		started, retired := 0, 0
		for _, r := range st.Requests() {
			switch {
			case r.Pattern == caracaltest.RouteStart && r.Status == http.StatusCreated:
				started++
			case r.Pattern == caracaltest.RouteRetire && r.Status == http.StatusNoContent:
				retired++
			}
		}
		assert.Equal(t, started, retired, "every started service was retired")
		assert.Positive(t, started)
	})
}

// A Close given the service's own Context waits for the retire, although the
// close cancels that context.
func TestServiceCloseWithItsOwnContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		svc, err := c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		require.NoError(t, svc.Close(svc.Context()))
		info, _ := st.SessionInfo(svc.ID())
		assert.Equal(t, "terminated", info.Status, "retired when Close returns")
		assert.ErrorIs(t, context.Cause(svc.Context()), caracal.ErrSessionClosed)
	})
}
