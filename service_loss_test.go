package caracal_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

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
		assert.ErrorContains(t, svc.Err(), "AttachService")
		assert.ErrorIs(t, context.Cause(svc.Context()), caracal.ErrLeaseExpired)
		synctest.Wait()
		assert.Equal(t, int32(1), lost.Load())

		_, err = svc.Heartbeat(t.Context())
		assert.ErrorIs(t, err, caracal.ErrLeaseExpired)
		require.NoError(t, svc.Close(t.Context()))
	})
}

// A renewal by hand moves the point where the lease is lost: a service
// renewed only by hand ends exactly on the deadline its last renewal gave,
// neither on the one before nor later.
func TestServiceManualLeaseExpiresOnTheRenewedDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, c := serviceStack(t)
		svc, err := c.SpawnService(t.Context())
		require.NoError(t, err)
		time.Sleep(100 * time.Second)
		renewed := time.Now()
		_, err = svc.Heartbeat(t.Context())
		require.NoError(t, err)

		time.Sleep(120*time.Second - time.Nanosecond)
		synctest.Wait()
		require.NoError(t, svc.Err(), "live past the first deadline, up to the renewed one")
		select {
		case <-svc.Done():
		case <-time.After(time.Hour): // of the bubble's time
			t.Fatal("the lease was never declared lost")
		}
		assert.Equal(t, 120*time.Second, time.Since(renewed), "loss is declared exactly on the renewed deadline")
		assert.ErrorIs(t, svc.Err(), caracal.ErrLeaseExpired)
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
		time.Sleep(time.Until(last.At.Add(4*time.Minute + 30*time.Second)))
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
		spawned := time.Now()

		time.Sleep(5 * time.Second)
		taken, err := c2.AttachService(t.Context(), old.ID(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		assert.Equal(t, int64(2), taken.Generation())
		assert.Equal(t, old.ID(), taken.ID())
		// No later than the Coordinator's deadline; the answer's Date, in
		// whole seconds, costs at most a second of it.
		assert.False(t, taken.Deadline().After(time.Now().Add(120*time.Second)))
		assert.False(t, taken.Deadline().Before(time.Now().Add(119*time.Second)))
		a, ok := caracal.FromContext(taken.Context())
		require.True(t, ok)
		assert.Equal(t, old.ID(), a.SessionID())

		// The old holder learns it on its next heartbeat, at 10 s.
		<-old.Done()
		assert.Equal(t, 10*time.Second, time.Since(spawned), "ended by the fenced answer, not by the lease deadline")
		err = old.Err()
		assert.ErrorIs(t, err, caracal.ErrLeaseFenced)
		assert.ErrorIs(t, err, caracal.ErrLeaseLost)
		assert.NotErrorIs(t, err, caracal.ErrLeaseExpired)
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
		n, err = c.Resume(t.Context(), svc.ID())
		require.NoError(t, err)
		assert.Equal(t, 1, n)
		resumes := requestsTo(st, caracaltest.RouteResume)
		require.Len(t, resumes, 1)
		assert.Empty(t, resumes[0].Body)
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
		{http.StatusNotFound, "not_found"}, // any 404 ends the lease (§5.7)
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

// Right after a local lease expiry the Coordinator has not suspended the
// session yet (its sweeper runs later), so a Resume is refused; the recovery
// the error names works at once.
func TestServiceLeaseExpiredRecoveryTheErrorNames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, c := serviceStack(t)
		svc, err := c.SpawnService(t.Context())
		require.NoError(t, err)
		<-svc.Done()
		require.ErrorIs(t, svc.Err(), caracal.ErrLeaseExpired)
		assert.ErrorContains(t, svc.Err(), "take it back with AttachService; if that reports ErrSuspended, Client.Resume, then AttachService")

		_, err = c.Resume(t.Context(), svc.ID())
		require.ErrorIs(t, err, caracal.ErrConflict, "not suspended yet")

		_, err = c.AttachService(t.Context(), svc.ID())
		require.ErrorIs(t, err, caracal.ErrSuspended, "the attach finds the lapsed lease and suspends it")
		n, err := c.Resume(t.Context(), svc.ID())
		require.NoError(t, err)
		assert.Equal(t, 1, n)
		again, err := c.AttachService(t.Context(), svc.ID())
		require.NoError(t, err)
		require.NoError(t, again.Close(t.Context()))
	})
}

// A renewal by hand that succeeds clears the failure before it: a lease that
// later runs out with no renewal attempted names no stale error.
func TestServiceExpiryAfterARenewalNamesNoEarlierFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		svc, err := c.SpawnService(t.Context())
		require.NoError(t, err)
		st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Status: http.StatusServiceUnavailable, Times: 1})
		_, err = svc.Heartbeat(t.Context())
		require.ErrorIs(t, err, caracal.ErrUnavailable)
		_, err = svc.Heartbeat(t.Context())
		require.NoError(t, err)

		<-svc.Done()
		assert.ErrorIs(t, svc.Err(), caracal.ErrLeaseExpired)
		assert.NotErrorIs(t, svc.Err(), caracal.ErrUnavailable, "the failure was followed by a renewal")
		require.NoError(t, svc.Close(t.Context()))
	})
}

// A renewal by hand whose caller gave up says nothing about the lease: a
// lease that later runs out does not name the caller's deadline as its last
// failure.
func TestServiceExpiryNamesNoHeartbeatItsCallerGaveUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		svc, err := c.SpawnService(t.Context())
		require.NoError(t, err)
		st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Delay: time.Hour, Times: 1})
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err = svc.Heartbeat(ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.NoError(t, svc.Err())

		<-svc.Done()
		assert.ErrorIs(t, svc.Err(), caracal.ErrLeaseExpired)
		assert.NotErrorIs(t, svc.Err(), context.DeadlineExceeded, "the caller's deadline is not the lease's")
		require.NoError(t, svc.Close(t.Context()))
	})
}
