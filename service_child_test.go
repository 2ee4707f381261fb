package caracal_test

import (
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

// A child service started from its parent's Context ends when the parent's
// lease is lost, but the Coordinator only suspends a suspended parent's
// subtree: the child is not retired, so that a resume brings the whole
// subtree back.
func TestChildServiceSurvivesParentSuspension(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		var lost atomic.Int32
		parent, err := c.SpawnService(t.Context(), caracal.HeartbeatInterval(10*time.Second))
		require.NoError(t, err)
		child, err := c.SpawnService(parent.Context(), caracal.HeartbeatInterval(20*time.Second),
			caracal.OnLeaseLost(func(error) { lost.Add(1) }))
		require.NoError(t, err)
		require.NoError(t, st.Suspend(parent.ID()))

		<-parent.Done()
		<-child.Done()
		synctest.Wait()
		require.ErrorIs(t, parent.Err(), caracal.ErrSuspended)
		assert.ErrorIs(t, child.Err(), caracal.ErrSuspended)
		assert.Zero(t, lost.Load(), "the child's context was cancelled; its own lease was not lost")
		assert.Zero(t, st.Count(caracaltest.RouteRetire), "a suspension retires nothing")
		info, _ := st.SessionInfo(child.ID())
		assert.Equal(t, "suspended", info.Status)

		n, err := c.Resume(t.Context(), parent.ID())
		require.NoError(t, err)
		assert.Equal(t, 2, n, "the parent and its child")
		again, err := c.AttachService(t.Context(), child.ID())
		require.NoError(t, err)

		// The old child handle no longer owns the session; the new one
		// retires it.
		require.NoError(t, child.Close(t.Context()))
		info, _ = st.SessionInfo(child.ID())
		assert.Equal(t, "active", info.Status)
		require.NoError(t, again.Close(t.Context()))
		info, _ = st.SessionInfo(child.ID())
		assert.Equal(t, "terminated", info.Status)
	})
}

// Closing the parent still retires a child started from its Context.
func TestChildServiceClosedWithParent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		parent, err := c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		child, err := c.SpawnService(parent.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		require.NoError(t, parent.Close(t.Context()))
		<-child.Done()
		synctest.Wait()
		assert.ErrorIs(t, child.Err(), caracal.ErrSessionClosed)
		require.NoError(t, child.Close(t.Context()))
		info, _ := st.SessionInfo(child.ID())
		assert.Equal(t, "terminated", info.Status)
	})
}

// A parent whose lease another holder took over is fenced, but the
// Coordinator leaves its subtree alone: the child still holds its own lease,
// so closing the child (which ended with its parent's Context) retires it
// instead of leaving it to run out its lease and stay suspended.
func TestChildServiceOfATakenOverParentIsRetiredOnClose(t *testing.T) {
	st, c := newStack(t)
	parent, err := c.SpawnService(t.Context())
	require.NoError(t, err)
	child, err := c.SpawnService(parent.Context())
	require.NoError(t, err)

	again, err := c.AttachService(t.Context(), parent.ID())
	require.NoError(t, err)
	endsSoon(t, child.Done(), "the child outlived its parent's handle")
	require.ErrorIs(t, child.Err(), caracal.ErrLeaseFenced)
	info, _ := st.SessionInfo(child.ID())
	require.Equal(t, "active", info.Status, "the takeover leaves the child running")

	require.NoError(t, child.Close(t.Context()))
	info, _ = st.SessionInfo(child.ID())
	assert.Equal(t, "terminated", info.Status, "the child's own lease was never fenced")
	info, _ = st.SessionInfo(parent.ID())
	assert.Equal(t, "active", info.Status, "the parent belongs to its new holder")
	require.NoError(t, again.Close(t.Context()))
}

// A service narrowed under its parent whose delegation fails is retired
// with its lease generation (a service's retire needs it), so nothing is
// left running for Client.Close to report.
func TestNarrowedServiceWhoseDelegationFailsIsRetired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		parent, err := c.SpawnService(t.Context(), caracal.WithLabels("dispatcher"))
		require.NoError(t, err)
		st.Inject(caracaltest.RouteDelegate, caracaltest.Fault{Status: http.StatusForbidden, Code: "application_ownership_required", Times: 1})
		_, err = c.SpawnService(parent.Context(), caracal.WithLabels("reader"),
			caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, 5*time.Minute)))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "retired again")
		require.NoError(t, c.Close(t.Context()), "no session was left unretired")
	})
}
