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

// serviceStack starts an in-memory stack and a client inside the current
// synctest bubble. The client is closed when the test ends.
func serviceStack(t *testing.T, opts ...caracaltest.Option) (*caracaltest.Stack, *caracal.Client) {
	t.Helper()
	st := caracaltest.Start(t, append([]caracaltest.Option{caracaltest.InMemory()}, opts...)...)
	c, err := st.NewClient()
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return st, c
}

// requestsTo returns the recorded requests of one route.
func requestsTo(st *caracaltest.Stack, pattern string) []caracaltest.Request {
	var out []caracaltest.Request
	for _, r := range st.Requests() {
		if r.Pattern == pattern {
			out = append(out, r)
		}
	}
	return out
}

// sameTime asserts that two times are the same instant (assert.Equal also
// compares monotonic clock readings and locations).
func sameTime(t *testing.T, want, got time.Time) {
	t.Helper()
	assert.True(t, want.Equal(got), "want %v, got %v", want, got)
}

// closed reports whether ch is closed, without blocking.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestServiceStartAndManualHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		start := time.Now()
		svc, err := c.SpawnService(t.Context(), caracal.WithLabels("billing-worker"))
		require.NoError(t, err)

		info, ok := st.SessionInfo(svc.ID())
		require.True(t, ok)
		assert.Equal(t, "service", info.Lifecycle)
		assert.Equal(t, "active", info.Status)
		assert.Equal(t, []string{"billing-worker"}, info.Labels)
		assert.Equal(t, "", info.ParentID)
		assert.Equal(t, int64(1), svc.Generation())
		assert.Equal(t, "active", svc.Status())
		sameTime(t, start.Add(120*time.Second), svc.Deadline())
		a, ok := caracal.FromContext(svc.Context())
		require.True(t, ok)
		assert.Same(t, svc.Agent(), a)
		assert.Equal(t, svc.ID(), a.SessionID())

		// The start carried no ttl_seconds and asked for a service.
		starts := requestsTo(st, caracaltest.RouteStart)
		require.Len(t, starts, 1)
		assert.Contains(t, string(starts[0].Body), `"lifecycle":"service"`)
		assert.NotContains(t, string(starts[0].Body), "ttl_seconds")

		// Manual by default: nothing renews in the background.
		time.Sleep(100 * time.Second)
		synctest.Wait()
		assert.Zero(t, st.Count(caracaltest.RouteHeartbeat))

		l, err := svc.Heartbeat(t.Context())
		require.NoError(t, err)
		sameTime(t, time.Now().Add(120*time.Second), l.Deadline)
		assert.Equal(t, int64(1), l.Generation)
		assert.Equal(t, "active", l.Status)
		sameTime(t, l.Deadline, svc.Deadline())
		hb := requestsTo(st, caracaltest.RouteHeartbeat)
		require.Len(t, hb, 1)
		assert.JSONEq(t, `{"status":"healthy","lease_generation":1}`, string(hb[0].Body))
		assert.NoError(t, svc.Err())

		require.NoError(t, svc.Close(t.Context()))
		retires := requestsTo(st, caracaltest.RouteRetire)
		require.Len(t, retires, 1)
		assert.JSONEq(t, `{"lease_generation":1}`, string(retires[0].Body))
		info, _ = st.SessionInfo(svc.ID())
		assert.Equal(t, "terminated", info.Status)
		assert.ErrorIs(t, svc.Err(), caracal.ErrSessionClosed)
		assert.ErrorIs(t, context.Cause(svc.Context()), caracal.ErrSessionClosed)
		assert.True(t, closed(svc.Done()))

		// Idempotent, and a closed handle does not call the Coordinator.
		require.NoError(t, svc.Close(t.Context()))
		_, err = svc.Heartbeat(t.Context())
		assert.ErrorIs(t, err, caracal.ErrSessionClosed)
		assert.Equal(t, 1, st.Count(caracaltest.RouteRetire))
		assert.Equal(t, 1, st.Count(caracaltest.RouteHeartbeat))
	})
}

func TestServiceManualLeaseExpiresLocally(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, c := serviceStack(t)
		start := time.Now()
		var lost atomic.Int32
		svc, err := c.SpawnService(t.Context(), caracal.OnLeaseLost(func(error) { lost.Add(1) }))
		require.NoError(t, err)

		time.Sleep(120*time.Second - time.Nanosecond)
		synctest.Wait()
		require.NoError(t, svc.Err())
		<-svc.Done()
		assert.Equal(t, 120*time.Second, time.Since(start), "loss is declared exactly on the local deadline")
		assert.ErrorIs(t, svc.Err(), caracal.ErrLeaseExpired)
		assert.ErrorIs(t, context.Cause(svc.Context()), caracal.ErrLeaseExpired)
		synctest.Wait()
		assert.Equal(t, int32(1), lost.Load())

		_, err = svc.Heartbeat(t.Context())
		assert.ErrorIs(t, err, caracal.ErrLeaseExpired)
		require.NoError(t, svc.Close(t.Context()))
	})
}

func TestServiceFixedCadence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		start := time.Now()
		svc, err := c.SpawnService(t.Context(), caracal.HeartbeatInterval(30*time.Second))
		require.NoError(t, err)

		time.Sleep(10*time.Minute + time.Second)
		synctest.Wait()
		hb := requestsTo(st, caracaltest.RouteHeartbeat)
		require.Len(t, hb, 20)
		for i, r := range hb {
			assert.Equal(t, time.Duration(i+1)*30*time.Second, r.At.Sub(start), "heartbeat %d", i)
			assert.Equal(t, http.StatusOK, r.Status)
		}
		sameTime(t, hb[19].At.Add(120*time.Second), svc.Deadline())
		require.NoError(t, svc.Close(t.Context()))
	})
}

func TestServiceFixedIntervalLongerThanLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		start := time.Now()
		svc, err := c.SpawnService(t.Context(), caracal.HeartbeatInterval(time.Hour))
		require.NoError(t, err)
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		require.NoError(t, svc.Err(), "an interval longer than the lease must not let it lapse")
		hb := requestsTo(st, caracaltest.RouteHeartbeat)
		require.NotEmpty(t, hb)
		assert.Equal(t, 80*time.Second, hb[0].At.Sub(start))
		require.NoError(t, svc.Close(t.Context()))
	})
}

func TestServiceDerivedCadence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		start := time.Now()
		svc, err := c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)

		time.Sleep(20 * time.Minute)
		synctest.Wait()
		hb := requestsTo(st, caracaltest.RouteHeartbeat)
		// A third of the 120 s lease, ±10 %: 36-44 s apart.
		require.GreaterOrEqual(t, len(hb), int(20*time.Minute/(44*time.Second)))
		require.LessOrEqual(t, len(hb), int(20*time.Minute/(36*time.Second)))
		prev, gaps := start, map[time.Duration]bool{}
		for i, r := range hb {
			gap := r.At.Sub(prev)
			assert.GreaterOrEqual(t, gap, 36*time.Second, "heartbeat %d", i)
			assert.LessOrEqual(t, gap, 44*time.Second, "heartbeat %d", i)
			gaps[gap] = true
			prev = r.At
		}
		assert.Greater(t, len(gaps), 1, "the cadence is jittered")
		require.NoError(t, svc.Err())
		require.NoError(t, svc.Close(t.Context()))
	})
}

func TestServiceDerivedCadenceLongLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t, caracaltest.WithLease(time.Hour))
		start := time.Now()
		svc, err := c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		sameTime(t, start.Add(time.Hour), svc.Deadline())
		time.Sleep(11 * time.Minute)
		synctest.Wait()
		hb := requestsTo(st, caracaltest.RouteHeartbeat)
		require.Len(t, hb, 2, "clamped to 5 min ±10 %")
		assert.InDelta(t, float64(5*time.Minute), float64(hb[0].At.Sub(start)), float64(30*time.Second))
		require.NoError(t, svc.Close(t.Context()))
	})
}

func TestServiceSurvivesOutageInsideLongLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t, caracaltest.WithLease(30*time.Minute))
		var lost atomic.Int32
		svc, err := c.SpawnService(t.Context(), caracal.HeartbeatAuto(), caracal.OnLeaseLost(func(error) { lost.Add(1) }))
		require.NoError(t, err)

		// The first renewal is due after 5 minutes ±10 % (a third of the
		// lease, clamped); the outage starts before it and lasts 10 minutes.
		time.Sleep(4 * time.Minute)
		synctest.Wait()
		require.Zero(t, st.Count(caracaltest.RouteHeartbeat))
		outage := time.Now()
		st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Status: http.StatusServiceUnavailable, For: 10 * time.Minute})

		time.Sleep(10 * time.Minute)
		synctest.Wait()
		require.NoError(t, svc.Err(), "a 10 minute outage inside a 30 minute lease is survived")
		failed := requestsTo(st, caracaltest.RouteHeartbeat)
		for _, r := range failed {
			assert.Equal(t, http.StatusServiceUnavailable, r.Status)
		}
		// Bounded traffic: the backoff grows to 30 s, so about 9 minutes of
		// outage cost a few dozen calls, not thousands.
		assert.GreaterOrEqual(t, len(failed), 10)
		assert.LessOrEqual(t, len(failed), 40)

		// After the outage the next retry renews the lease.
		time.Sleep(time.Minute)
		synctest.Wait()
		require.NoError(t, svc.Err())
		hb := requestsTo(st, caracaltest.RouteHeartbeat)
		last := hb[len(hb)-1]
		assert.Equal(t, http.StatusOK, last.Status)
		assert.False(t, last.At.Before(outage.Add(10*time.Minute)))
		assert.LessOrEqual(t, last.At.Sub(outage.Add(10*time.Minute)), 30*time.Second)
		sameTime(t, last.At.Add(30*time.Minute), svc.Deadline())
		info, _ := st.SessionInfo(svc.ID())
		assert.Equal(t, "active", info.Status)

		// And the cadence is back to 5 minutes ±10 %.
		time.Sleep(last.At.Add(4*time.Minute + 30*time.Second).Sub(time.Now()))
		synctest.Wait()
		assert.Len(t, requestsTo(st, caracaltest.RouteHeartbeat), len(hb))
		time.Sleep(time.Minute)
		synctest.Wait()
		assert.Len(t, requestsTo(st, caracaltest.RouteHeartbeat), len(hb)+1)
		assert.Zero(t, lost.Load())
		require.NoError(t, svc.Close(t.Context()))
	})
}

func TestServiceLostAfterDeadlineDuringOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Status: http.StatusServiceUnavailable, For: 10 * time.Minute})
		start := time.Now()
		lostWith := make(chan error, 2)
		svc, err := c.SpawnService(t.Context(), caracal.HeartbeatAuto(), caracal.OnLeaseLost(func(err error) { lostWith <- err }))
		require.NoError(t, err)

		<-svc.Done()
		assert.Equal(t, 120*time.Second, time.Since(start), "loss is declared on the local deadline")
		err = svc.Err()
		assert.ErrorIs(t, err, caracal.ErrLeaseExpired)
		assert.ErrorIs(t, err, caracal.ErrUnavailable, "the reason carries the last failure")
		assert.Equal(t, err, context.Cause(svc.Context()))
		assert.Equal(t, err, <-lostWith)
		synctest.Wait()
		assert.Empty(t, lostWith, "OnLeaseLost runs once")

		n := st.Count(caracaltest.RouteHeartbeat)
		assert.GreaterOrEqual(t, n, 5, "it kept trying until the deadline")
		assert.LessOrEqual(t, n, 20, "bounded traffic to a dead Coordinator")
		for _, r := range requestsTo(st, caracaltest.RouteHeartbeat) {
			assert.False(t, r.At.After(start.Add(120*time.Second)))
		}

		// Nothing more is sent after the loss.
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		assert.Equal(t, n, st.Count(caracaltest.RouteHeartbeat))

		// Close still retires: the session may be alive on the server.
		require.NoError(t, svc.Close(t.Context()))
		assert.Equal(t, 1, st.Count(caracaltest.RouteRetire))
	})
}

func TestServiceLostOnDeadlineWhenCoordinatorHangs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Delay: time.Hour})
		start := time.Now()
		svc, err := c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		<-svc.Done()
		assert.Equal(t, 120*time.Second, time.Since(start))
		assert.ErrorIs(t, svc.Err(), caracal.ErrLeaseExpired)
		// Each hanging call was cut at 10 s or at the deadline.
		n := st.Count(caracaltest.RouteHeartbeat)
		assert.GreaterOrEqual(t, n, 3)
		assert.LessOrEqual(t, n, 12)
		st.ClearFaults()
		require.NoError(t, svc.Close(t.Context()))
	})
}

func TestServiceTokenExpiryDuringLongRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		svc, err := c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)

		// Three hours: the 900 s lifecycle token expires a dozen times.
		time.Sleep(3 * time.Hour)
		synctest.Wait()
		require.NoError(t, svc.Err())
		hb := requestsTo(st, caracaltest.RouteHeartbeat)
		require.NotEmpty(t, hb)
		bearers := map[string]bool{}
		for _, r := range hb {
			require.Equal(t, http.StatusOK, r.Status, "no heartbeat may go out with an expired token")
			bearers[r.Header.Get("Authorization")] = true
		}
		assert.GreaterOrEqual(t, len(bearers), 12, "fresh lifecycle tokens were used")
		assert.GreaterOrEqual(t, st.Count(caracaltest.RouteToken), 12)
		require.NoError(t, svc.Close(t.Context()))
		info, _ := st.SessionInfo(svc.ID())
		assert.Equal(t, "terminated", info.Status)
	})
}

func TestServiceFencedBySecondHolder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c1 := serviceStack(t)
		c2, err := st.NewClient()
		require.NoError(t, err)
		defer c2.Close(context.Background())

		lostWith := make(chan error, 1)
		old, err := c1.SpawnService(t.Context(), caracal.HeartbeatInterval(10*time.Second),
			caracal.OnLeaseLost(func(err error) { lostWith <- err }))
		require.NoError(t, err)

		time.Sleep(5 * time.Second)
		taken, err := c2.AttachService(t.Context(), old.ID(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		assert.Equal(t, int64(2), taken.Generation())
		assert.Equal(t, old.ID(), taken.ID())
		sameTime(t, time.Now().Add(120*time.Second), taken.Deadline())
		a, ok := caracal.FromContext(taken.Context())
		require.True(t, ok)
		assert.Equal(t, old.ID(), a.SessionID())

		// The old holder learns it on its next heartbeat, at 10 s.
		<-old.Done()
		err = old.Err()
		assert.ErrorIs(t, err, caracal.ErrLeaseFenced)
		assert.ErrorIs(t, err, caracal.ErrLeaseLost)
		assert.Equal(t, err, <-lostWith)
		assert.ErrorIs(t, context.Cause(old.Context()), caracal.ErrLeaseFenced)
		_, err = old.Heartbeat(t.Context())
		assert.ErrorIs(t, err, caracal.ErrLeaseFenced)

		// The fenced handle does not retire what it no longer owns.
		require.NoError(t, old.Close(t.Context()))
		assert.Zero(t, st.Count(caracaltest.RouteRetire))
		info, _ := st.SessionInfo(taken.ID())
		assert.Equal(t, "active", info.Status)

		time.Sleep(5 * time.Minute)
		synctest.Wait()
		require.NoError(t, taken.Err())
		require.NoError(t, taken.Close(t.Context()))
		retires := requestsTo(st, caracaltest.RouteRetire)
		require.Len(t, retires, 1)
		assert.JSONEq(t, `{"lease_generation":2}`, string(retires[0].Body))
		info, _ = st.SessionInfo(taken.ID())
		assert.Equal(t, "terminated", info.Status)
	})
}

func TestServiceSuspended(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		lostWith := make(chan error, 1)
		svc, err := c.SpawnService(t.Context(), caracal.HeartbeatInterval(20*time.Second),
			caracal.OnLeaseLost(func(err error) { lostWith <- err }))
		require.NoError(t, err)
		time.Sleep(30 * time.Second)
		require.NoError(t, st.Suspend(svc.ID()))
		suspended := time.Now()

		<-svc.Done()
		assert.Equal(t, 10*time.Second, time.Since(suspended), "surfaced on the next heartbeat")
		assert.ErrorIs(t, svc.Err(), caracal.ErrSuspended)
		assert.ErrorIs(t, context.Cause(svc.Context()), caracal.ErrSuspended)
		assert.ErrorIs(t, <-lostWith, caracal.ErrSuspended)
		assert.Equal(t, "suspended", svc.Status())

		// The loop stopped: no more heartbeats.
		n := st.Count(caracaltest.RouteHeartbeat)
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		assert.Equal(t, n, st.Count(caracaltest.RouteHeartbeat))

		// After a resume the session can be attached again.
		require.NoError(t, st.Resume(svc.ID()))
		again, err := c.AttachService(t.Context(), svc.ID())
		require.NoError(t, err)
		assert.Equal(t, int64(2), again.Generation())

		// The suspended handle no longer owns it: its close retires
		// nothing.
		require.NoError(t, svc.Close(t.Context()))
		info, _ := st.SessionInfo(svc.ID())
		assert.Equal(t, "active", info.Status)
		require.NoError(t, again.Close(t.Context()))
		info, _ = st.SessionInfo(svc.ID())
		assert.Equal(t, "terminated", info.Status)
	})
}

func TestServiceLeaseExpiredAnswerIsSuspension(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		svc, err := c.SpawnService(t.Context())
		require.NoError(t, err)
		st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Status: http.StatusConflict, Code: "session_lease_expired", Times: 1})
		_, err = svc.Heartbeat(t.Context())
		assert.ErrorIs(t, err, caracal.ErrSuspended)
		assert.ErrorIs(t, err, caracal.ErrLeaseExpired)
		assert.ErrorIs(t, svc.Err(), caracal.ErrSuspended)
		assert.True(t, closed(svc.Done()))
		// A suspended session still belongs to this handle: Close retires it.
		require.NoError(t, svc.Close(t.Context()))
		assert.Equal(t, 1, st.Count(caracaltest.RouteRetire))
	})
}

func TestServiceTerminalAnswers(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
	}{
		{http.StatusNotFound, "session_not_found"},
		{http.StatusConflict, "session_not_live"},
		{http.StatusConflict, "session_subject_inactive"},
		{http.StatusConflict, "session_not_service"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st, c := serviceStack(t)
				svc, err := c.SpawnService(t.Context(), caracal.HeartbeatInterval(10*time.Second))
				require.NoError(t, err)
				st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Status: tc.status, Code: tc.code})
				start := time.Now()
				<-svc.Done()
				assert.Equal(t, 10*time.Second, time.Since(start), "a final answer ends the handle at once")
				assert.ErrorIs(t, svc.Err(), caracal.ErrLeaseLost)
				var apiErr *caracal.Error
				require.ErrorAs(t, svc.Err(), &apiErr)
				assert.Equal(t, tc.code, apiErr.Code)
				assert.Equal(t, 1, st.Count(caracaltest.RouteHeartbeat), "no retry after a final answer")
				require.NoError(t, svc.Close(t.Context()))
				assert.Zero(t, st.Count(caracaltest.RouteRetire), "a gone session is not retired")
			})
		})
	}
}

func TestServiceRetriesTransientAnswers(t *testing.T) {
	for _, f := range []caracaltest.Fault{
		{Status: http.StatusBadGateway, Times: 2},
		{Status: http.StatusTooManyRequests, RetryAfter: 7 * time.Second, Times: 1},
		{Drop: true, Times: 2},
	} {
		synctest.Test(t, func(t *testing.T) {
			st, c := serviceStack(t)
			svc, err := c.SpawnService(t.Context(), caracal.HeartbeatInterval(30*time.Second))
			require.NoError(t, err)
			st.Inject(caracaltest.RouteHeartbeat, f)
			time.Sleep(40 * time.Second)
			synctest.Wait()
			require.NoError(t, svc.Err())
			hb := requestsTo(st, caracaltest.RouteHeartbeat)
			require.GreaterOrEqual(t, len(hb), 2)
			if f.RetryAfter > 0 {
				assert.GreaterOrEqual(t, hb[1].At.Sub(hb[0].At), f.RetryAfter, "Retry-After is honoured")
			}
			last := hb[len(hb)-1]
			assert.Equal(t, http.StatusOK, last.Status)
			sameTime(t, last.At.Add(120*time.Second), svc.Deadline())
			require.NoError(t, svc.Close(t.Context()))
		})
	}
}

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

func TestServiceParentRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		task, err := c.Spawn(t.Context())
		require.NoError(t, err)
		defer task.Close(context.Background())

		// Inside a task, a service starts as a root.
		root, err := c.SpawnService(task.Context())
		require.NoError(t, err)
		info, _ := st.SessionInfo(root.ID())
		assert.Equal(t, "", info.ParentID)

		// Inside a service, a service is its child.
		child, err := c.SpawnService(root.Context())
		require.NoError(t, err)
		info, _ = st.SessionInfo(child.ID())
		assert.Equal(t, root.ID(), info.ParentID)

		// An explicit task parent is refused by the Coordinator.
		_, err = c.SpawnService(t.Context(), caracal.WithParent(task.Agent()))
		var apiErr *caracal.Error
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, "task_session_cannot_start_service", apiErr.Code)

		// The child's context derives from the parent's: closing the parent
		// ends the child too, as the Coordinator's cascade does.
		require.NoError(t, root.Close(t.Context()))
		synctest.Wait()
		assert.True(t, closed(child.Done()))
		require.NoError(t, child.Close(t.Context()))
	})
}

func TestServiceOptionErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		_, err := c.SpawnService(t.Context(), caracal.HeartbeatInterval(time.Millisecond))
		assert.ErrorIs(t, err, caracal.ErrInvalidRequest)
		_, err = c.SpawnService(t.Context(), caracal.WithTTL(time.Hour))
		assert.ErrorIs(t, err, caracal.ErrInvalidRequest)
		_, err = c.Spawn(t.Context(), caracal.HeartbeatAuto())
		assert.ErrorIs(t, err, caracal.ErrInvalidRequest)
		_, err = c.AttachService(t.Context(), "s-1", caracal.WithLabels("x"))
		assert.ErrorIs(t, err, caracal.ErrInvalidRequest)
		_, err = c.AttachService(t.Context(), "")
		assert.ErrorIs(t, err, caracal.ErrInvalidRequest)
		assert.Zero(t, st.Count(caracaltest.RouteStart)+st.Count(caracaltest.RouteLease))

		_, err = c.AttachService(t.Context(), "no-such-session")
		assert.ErrorIs(t, err, caracal.ErrNotFound)
	})
}

func TestServiceAttachSuspendedFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		svc, err := c.SpawnService(t.Context())
		require.NoError(t, err)
		require.NoError(t, st.Suspend(svc.ID()))
		_, err = c.AttachService(t.Context(), svc.ID())
		assert.ErrorIs(t, err, caracal.ErrSuspended)
		require.NoError(t, svc.Close(t.Context()))
	})
}

func TestServiceReplayedStartAcquiresLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		first, err := c.SpawnService(t.Context(), caracal.WithIdempotencyKey("billing-worker-1"), caracal.HeartbeatInterval(10*time.Second))
		require.NoError(t, err)
		second, err := c.SpawnService(t.Context(), caracal.WithIdempotencyKey("billing-worker-1"))
		require.NoError(t, err)
		assert.Equal(t, first.ID(), second.ID())
		assert.Equal(t, int64(2), second.Generation(), "a replay is followed by a lease acquire")
		assert.Equal(t, 1, st.Count(caracaltest.RouteLease))
		<-first.Done()
		assert.ErrorIs(t, first.Err(), caracal.ErrLeaseFenced)
		require.NoError(t, second.Close(t.Context()))
		require.NoError(t, first.Close(t.Context()))
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

func TestServiceNarrowedUnderService(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		parent, err := c.SpawnService(t.Context(), caracal.WithLabels("reader"), caracal.HeartbeatAuto())
		require.NoError(t, err)
		child, err := c.SpawnService(parent.Context(), caracal.WithLabels("reader"), caracal.HeartbeatAuto(),
			caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, 0)))
		require.NoError(t, err)
		edgeID := child.Agent().DelegationID()
		require.NotEmpty(t, edgeID)
		edge, ok := st.EdgeInfo(edgeID)
		require.True(t, ok)
		assert.Equal(t, parent.ID(), edge.Source)
		assert.Equal(t, child.ID(), edge.Target)
		assert.Equal(t, []string{"tickets:read"}, edge.Scopes)
		assert.Equal(t, "active", edge.Status)
		info, _ := st.SessionInfo(child.ID())
		assert.Equal(t, parent.ID(), info.ParentID)

		// The edge outlives many leases.
		time.Sleep(time.Hour)
		synctest.Wait()
		require.NoError(t, parent.Err())
		require.NoError(t, child.Err())
		edge, _ = st.EdgeInfo(edgeID)
		assert.Equal(t, "active", edge.Status)

		require.NoError(t, child.Close(t.Context()))
		require.NoError(t, parent.Close(t.Context()))
	})
}

func TestServiceNarrowInsideTaskIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		task, err := c.Spawn(t.Context())
		require.NoError(t, err)
		defer task.Close(context.Background())
		n := st.Count(caracaltest.RouteStart)
		_, err = c.SpawnService(task.Context(),
			caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, 0)))
		assert.ErrorIs(t, err, caracal.ErrInvalidGrant)
		assert.Equal(t, n, st.Count(caracaltest.RouteStart), "refused before any call")
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
