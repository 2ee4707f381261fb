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
		_, err = c.AttachService(t.Context(), "s-1", caracal.HeartbeatInterval(0))
		assert.ErrorIs(t, err, caracal.ErrInvalidRequest)
		_, err = c.AttachService(t.Context(), "")
		assert.ErrorIs(t, err, caracal.ErrInvalidRequest)
		assert.Zero(t, st.Count(caracaltest.RouteStart)+st.Count(caracaltest.RouteLease))

		_, err = c.AttachService(t.Context(), "no-such-session")
		assert.ErrorIs(t, err, caracal.ErrNotFound)
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

func TestServiceNarrowedUnderService(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		parent, err := c.SpawnService(t.Context(), caracal.WithLabels("reader"), caracal.HeartbeatAuto())
		require.NoError(t, err)
		start := time.Now()
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
		sameTime(t, start.Add(24*time.Hour), edge.ExpiresAt) // a zero ttl: a day, not the lease
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
		info, _ = st.SessionInfo(child.ID())
		assert.Equal(t, "terminated", info.Status, "closing the handle retires the narrowed service")
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

// A narrowed service with no parent at all says that its parent must be a
// service, not only that it needs one.
func TestServiceNarrowWithoutParentSaysTheParentIsAService(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		_, err := c.SpawnService(t.Context(), caracal.WithLabels("billing-worker"),
			caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, 0)))
		assert.ErrorIs(t, err, caracal.ErrNarrowNeedsParent)
		assert.ErrorContains(t, err, "a narrowed service needs a parent service: start it with SpawnService, then spawn this one from its Context or name it with WithParent")
		assert.Zero(t, st.Count(caracaltest.RouteStart), "refused before any call")
	})
}

// WithoutParent under a service's Context leaves a narrowed service with no
// parent as well, and it is refused the same way.
func TestServiceNarrowWithoutParentOptionSaysTheParentIsAService(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		parent, err := c.SpawnService(t.Context(), caracal.WithLabels("billing-worker"))
		require.NoError(t, err)
		defer parent.Close(context.Background())
		n := st.Count(caracaltest.RouteStart)
		_, err = c.SpawnService(parent.Context(), caracal.WithoutParent(), caracal.WithLabels("billing-worker"),
			caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, 0)))
		assert.ErrorIs(t, err, caracal.ErrNarrowNeedsParent)
		assert.ErrorContains(t, err, "a narrowed service needs a parent service")
		assert.Equal(t, n, st.Count(caracaltest.RouteStart), "refused before any call")
	})
}

// An option SpawnService refuses is reported as such also with a narrowed
// grant: WithParent(nil) says that the parent is nil, as it does for Spawn,
// rather than that the service has no parent to narrow under.
func TestServiceNarrowWithARefusedOptionReportsTheOption(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		task, err := c.Spawn(t.Context())
		require.NoError(t, err)
		narrow := caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, 0))
		n := st.Count(caracaltest.RouteStart)
		for name, ctx := range map[string]context.Context{"nothing bound": t.Context(), "a task bound": task.Context()} {
			_, err := c.SpawnService(ctx, caracal.WithParent(nil), narrow)
			assert.ErrorIs(t, err, caracal.ErrInvalidRequest, name)
			assert.ErrorContains(t, err, "WithParent(nil): pass the parent agent", name)
			_, err = c.Spawn(ctx, caracal.WithParent(nil), narrow)
			assert.ErrorContains(t, err, "WithParent(nil): pass the parent agent", "Spawn, %s", name)
		}
		assert.Equal(t, n, st.Count(caracaltest.RouteStart), "refused before any call")
	})
}
