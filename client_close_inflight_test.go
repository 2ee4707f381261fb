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

// startsInFlight are the calls that start (or take over) a session, each as
// the Client.Close test below runs it.
var startsInFlight = []struct {
	name  string
	route string // the request the test holds up
	run   func(t *testing.T, c *caracal.Client, svcID string) error
}{
	{"Spawn", caracaltest.RouteStart, func(t *testing.T, c *caracal.Client, _ string) error {
		_, err := c.Spawn(t.Context())
		return err
	}},
	{"SpawnService", caracaltest.RouteStart, func(t *testing.T, c *caracal.Client, _ string) error {
		_, err := c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		return err
	}},
	{"AttachService", caracaltest.RouteLease, func(t *testing.T, c *caracal.Client, svcID string) error {
		_, err := c.AttachService(t.Context(), svcID, caracal.HeartbeatAuto())
		return err
	}},
}

// inFlightStack starts an in-memory stack with a client c to close and
// another client holding the service svcID that AttachService takes over.
func inFlightStack(t *testing.T) (st *caracaltest.Stack, c, other *caracal.Client, svcID string) {
	t.Helper()
	st = caracaltest.Start(t, caracaltest.InMemory())
	c, err := st.NewClient()
	require.NoError(t, err)
	other, err = st.NewClient()
	require.NoError(t, err)
	svc, err := other.SpawnService(t.Context())
	require.NoError(t, err)
	return st, c, other, svc.ID()
}

// A start in flight when Client.Close begins ends before Close returns, and
// the session it started is retired by then: Close retires every session
// the client started, also one whose start it overtook.
func TestClientCloseWaitsForStartsInFlight(t *testing.T) {
	for _, tc := range startsInFlight {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st, c, other, svcID := inFlightStack(t)

				before := st.Count(tc.route)
				st.Inject(tc.route, caracaltest.Fault{Delay: time.Second, Times: 1})
				started := make(chan error, 1)
				go func() { started <- tc.run(t, c, svcID) }()
				synctest.Wait() // the request waits in the Coordinator

				require.NoError(t, c.Close(t.Context()))
				// The stack records a request once it has answered it.
				assert.Equal(t, before+1, st.Count(tc.route), "the held request was answered before Close returned")
				assert.Equal(t, 1, st.Count(caracaltest.RouteRetire), "the session is retired before Close returns")
				// The call itself returns once Close let it go; its goroutine
				// may not have handed the result over yet.
				synctest.Wait()
				assert.ErrorIs(t, <-started, caracal.ErrClosed)
				require.NoError(t, other.Close(t.Context()))
			})
		})
	}
}

// When the retire of a session whose start Close overtook fails, Close and
// the start both say so; neither reports success while the session runs on.
func TestClientCloseReportsRetireOfStartInFlight(t *testing.T) {
	for _, tc := range startsInFlight {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st, c, other, svcID := inFlightStack(t)

				st.Inject(tc.route, caracaltest.Fault{Delay: time.Second, Times: 1})
				st.Inject(caracaltest.RouteRetire, caracaltest.Fault{Status: http.StatusServiceUnavailable})
				started := make(chan error, 1)
				go func() { started <- tc.run(t, c, svcID) }()
				synctest.Wait()

				err := c.Close(t.Context())
				assert.ErrorIs(t, err, caracal.ErrUnavailable, "Close reports the failed retire")
				err = <-started
				assert.ErrorIs(t, err, caracal.ErrClosed)
				assert.ErrorIs(t, err, caracal.ErrUnavailable, "the start reports the failed retire")
				st.ClearFaults()
				require.NoError(t, other.Close(t.Context()))
			})
		})
	}
}

// When the retire of the session of a given-up start fails, that session
// runs on, known to no one: Close reports it instead of returning nil,
// whether the retire ended before Close began or while Close waited for it.
func TestClientCloseReportsFailedRetireOfGivenUpStart(t *testing.T) {
	for _, during := range []bool{false, true} {
		t.Run(map[bool]string{false: "before Close", true: "during Close"}[during], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := caracaltest.Start(t, caracaltest.InMemory())
				// The answer of the first attempt is lost; both retries meet a
				// 503, and so does the retire of the session found again.
				c, lost := lostStartClient(t, st)
				st.Inject(caracaltest.RouteRetire, caracaltest.Fault{Status: http.StatusServiceUnavailable, Delay: time.Second})
				_, err := c.Spawn(t.Context())
				require.ErrorIs(t, err, caracal.ErrUnavailable)
				require.NotEmpty(t, lost.lost)
				if !during {
					time.Sleep(2 * time.Second) // the retire failed
					require.Equal(t, 1, st.Count(caracaltest.RouteRetire))
				}

				err = c.Close(t.Context())
				assert.ErrorIs(t, err, caracal.ErrUnavailable, "during=%v", during)
				assert.ErrorContains(t, err, lost.lost)
				info, _ := st.SessionInfo(lost.lost)
				assert.Equal(t, "active", info.Status)
			})
		})
	}
}

// A start in flight when Client.Close begins makes no further attempt: with
// the Coordinator failing every start, Close waits for the attempt on the
// wire and the lookup of a session it may have started, not for the start's
// retries, and the start fails with ErrClosed as well as the attempt's error.
func TestClientCloseEndsTheRetriesOfAStartInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		st.Inject(caracaltest.RouteStart, caracaltest.Fault{Status: http.StatusServiceUnavailable, Delay: time.Second})
		started := make(chan error, 1)
		go func() {
			_, err := c.Spawn(t.Context())
			started <- err
		}()
		synctest.Wait() // the first attempt waits in the Coordinator

		begin := time.Now()
		require.NoError(t, c.Close(t.Context()))
		assert.Equal(t, 2*time.Second, time.Since(begin), "the attempt, then the lookup of what it may have started")
		assert.Equal(t, 2, st.Count(caracaltest.RouteStart), "no retry after Close began")
		err := <-started
		assert.ErrorIs(t, err, caracal.ErrClosed)
		assert.ErrorIs(t, err, caracal.ErrUnavailable, "the attempt's error is kept")
	})
}

// A call retried after a transient failure, such as Delegate, makes no
// further attempt once Client.Close began, and fails with ErrClosed as well
// as the attempt's error.
func TestClientCloseEndsTheRetriesOfADelegateInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		giver, err := c.Spawn(t.Context())
		require.NoError(t, err)
		peer, err := c.Spawn(t.Context())
		require.NoError(t, err)
		st.Inject(caracaltest.RouteDelegate, caracaltest.Fault{Status: http.StatusServiceUnavailable, Delay: time.Second})
		delegated := make(chan error, 1)
		go func() {
			// Not cancelled by the giver's retire, which Close makes.
			ctx := context.WithoutCancel(giver.Context())
			_, err := c.Delegate(ctx, peer.ID(), caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Minute))
			delegated <- err
		}()
		synctest.Wait() // the first attempt waits in the Coordinator

		require.NoError(t, c.Close(t.Context()))
		err = <-delegated
		assert.ErrorIs(t, err, caracal.ErrClosed)
		assert.ErrorIs(t, err, caracal.ErrUnavailable, "the attempt's error is kept")
		assert.Equal(t, 1, st.Count(caracaltest.RouteDelegate), "no retry after Close began")
	})
}
