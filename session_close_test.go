package caracal_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

func TestCloseAfterContextCancel(t *testing.T) {
	st, c := newStack(t)
	ctx, cancel := context.WithCancel(t.Context())
	s, err := c.Spawn(ctx)
	require.NoError(t, err)
	cancel()
	assert.ErrorIs(t, s.Context().Err(), context.Canceled, "the session context derives from ctx")
	_ = s.Close(ctx) // returns at once: ctx is done; the retire goes on
	// A second Close with a live context waits for the one retire.
	require.NoError(t, s.Close(t.Context()))
	info, _ := st.SessionInfo(s.ID())
	assert.Equal(t, "terminated", info.Status)
	assert.Equal(t, 1, st.Count(caracaltest.RouteRetire))
}

func TestClientCloseRetiresOpenSessions(t *testing.T) {
	st, c := newStack(t)
	var ids []string
	for range 3 {
		s, err := c.Spawn(t.Context())
		require.NoError(t, err)
		ids = append(ids, s.ID())
	}
	closed, err := c.Spawn(t.Context())
	require.NoError(t, err)
	require.NoError(t, closed.Close(t.Context()))

	require.NoError(t, c.Close(t.Context()))
	for _, id := range ids {
		info, _ := st.SessionInfo(id)
		assert.Equal(t, "terminated", info.Status)
	}
	assert.Equal(t, 4, st.Count(caracaltest.RouteRetire), "each session retired once")
	_, err = c.Spawn(t.Context())
	assert.ErrorIs(t, err, caracal.ErrClosed)
	_, err = c.Headers(t.Context(), caracal.AsApplication())
	assert.ErrorIs(t, err, caracal.ErrClosed)
}

// hangingRetire starts, in a synctest bubble, an in-memory stack whose
// retires hang for an hour, a client of it and a session of that client.
func hangingRetire(t *testing.T) (*caracaltest.Stack, *caracal.Client, *caracal.Session) {
	t.Helper()
	st := caracaltest.Start(t, caracaltest.InMemory())
	c, err := st.NewClient()
	require.NoError(t, err)
	s, err := c.Spawn(t.Context())
	require.NoError(t, err)
	st.Inject(caracaltest.RouteRetire, caracaltest.Fault{Delay: time.Hour})
	return st, c, s
}

func TestSessionCloseBoundedWhenCoordinatorHangs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, c, s := hangingRetire(t)

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		err := s.Close(ctx)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, time.Second, time.Since(start), "Close returns by its ctx's deadline")

		// The detached retire gives up after 10 s; Client.Close waits for it.
		err = c.Close(context.Background())
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 10*time.Second, time.Since(start))
	})
}

func TestClientCloseTwiceWaitsForTheFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, c, _ := hangingRetire(t)

		start := time.Now()
		first := make(chan error, 1)
		go func() { first <- c.Close(context.Background()) }()
		synctest.Wait() // the first Close waits for the hanging retire

		// A second Close returns by its own ctx's deadline...
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		assert.ErrorIs(t, c.Close(ctx), context.DeadlineExceeded)
		assert.Equal(t, time.Second, time.Since(start))

		// ...and otherwise reports the outcome of the first once it is
		// known, instead of claiming success while the retire still runs.
		err := c.Close(context.Background())
		assert.ErrorContains(t, err, "retiring session")
		assert.Equal(t, 10*time.Second, time.Since(start))
		assert.Equal(t, err, <-first)
	})
}

func TestConcurrentCloseRetiresOnce(t *testing.T) {
	for range 3 {
		st, c := newStack(t)
		const n = 12
		sessions := make([]*caracal.Session, n)
		for i := range sessions {
			s, err := c.Spawn(t.Context())
			require.NoError(t, err)
			sessions[i] = s
		}
		var wg sync.WaitGroup
		for _, s := range sessions {
			for range 3 {
				wg.Go(func() { assert.NoError(t, s.Close(t.Context())) })
			}
		}
		wg.Go(func() { assert.NoError(t, c.Close(t.Context())) })
		wg.Wait()
		assert.Equal(t, n, st.Count(caracaltest.RouteRetire), "one retire per session")
		for _, s := range sessions {
			info, _ := st.SessionInfo(s.ID())
			assert.Equal(t, "terminated", info.Status)
			assert.ErrorIs(t, context.Cause(s.Context()), caracal.ErrSessionClosed)
		}
	}
}

// A Close given the session's own Context (or one derived from it) cancels
// that context itself; that is no reason to stop waiting for the retire,
// whose outcome Close reports. The context's deadline still bounds it.
func TestCloseWithTheSessionsOwnContext(t *testing.T) {
	st, c := newStack(t)
	s, err := c.Spawn(t.Context())
	require.NoError(t, err)
	require.NoError(t, s.Close(s.Context()))
	info, _ := st.SessionInfo(s.ID())
	assert.Equal(t, "terminated", info.Status, "retired when Close returns")
	assert.ErrorIs(t, context.Cause(s.Context()), caracal.ErrSessionClosed)

	d, err := c.Spawn(t.Context())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(d.Context(), time.Minute)
	defer cancel()
	require.NoError(t, d.Close(ctx))
	info, _ = st.SessionInfo(d.ID())
	assert.Equal(t, "terminated", info.Status)
}

func TestCloseWithTheSessionsOwnContextKeepsItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, c, s := hangingRetire(t)
		ctx, cancel := context.WithTimeout(s.Context(), time.Second)
		defer cancel()
		start := time.Now()
		assert.ErrorIs(t, s.Close(ctx), context.DeadlineExceeded)
		assert.Equal(t, time.Second, time.Since(start))
		assert.ErrorContains(t, c.Close(context.Background()), "retiring session")
	})
}

// Client.Close given the Context of one of its sessions retires every
// session before it returns, although closing that session cancels ctx.
func TestClientCloseWithASessionsContext(t *testing.T) {
	st, c := newStack(t)
	var sessions []*caracal.Session
	for range 4 {
		s, err := c.Spawn(t.Context())
		require.NoError(t, err)
		sessions = append(sessions, s)
	}
	require.NoError(t, c.Close(sessions[0].Context()))
	for _, s := range sessions {
		info, _ := st.SessionInfo(s.ID())
		assert.Equal(t, "terminated", info.Status)
	}
}

// A narrowing the Coordinator refuses retires the new session again; when
// that retire fails too, the Spawn error says so, and Client.Close reports
// the session left running, instead of "(retired again)" and nil.
func TestNarrowingRefusedWhoseRetireFailsIsReported(t *testing.T) {
	st, c := newStack(t)
	root, err := c.Spawn(t.Context())
	require.NoError(t, err)
	st.Inject(caracaltest.RouteRetire, caracaltest.Fault{Status: http.StatusServiceUnavailable, Times: 1})
	_, err = c.Spawn(root.Context(), caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:admin"}, "resource://tickets", caracal.Constraints{}, time.Minute)))
	require.ErrorIs(t, err, caracal.ErrAccessDenied)
	assert.NotContains(t, err.Error(), "(retired again)")
	assert.ErrorContains(t, err, "retiring it failed")
	requireReportedRunning(t, st, c, retiredID(t, st))
}

// Close is idempotent: once the retire is over, a later Close returns its
// outcome, also under a context that has already ended. The finished close
// and the ended context are both ready, so the calls are repeated: one that
// picked either at random would fail some of them.
func TestCloseAfterTheRetireReturnsItsOutcomeUnderAnEndedContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		s, err := c.Spawn(t.Context())
		require.NoError(t, err)
		svc, err := c.SpawnService(t.Context())
		require.NoError(t, err)
		require.NoError(t, s.Close(t.Context()))
		require.NoError(t, svc.Close(t.Context()))

		ended, cancel := context.WithCancel(t.Context())
		cancel()
		for i := range 20 {
			assert.NoError(t, s.Close(ended), "session, call %d", i)
			assert.NoError(t, svc.Close(ended), "service, call %d", i)
		}
		assert.Equal(t, 2, st.Count(caracaltest.RouteRetire), "one retire each")
	})
}
