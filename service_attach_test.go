package caracal_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

func TestResumeSubtreeThenAttach(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		svc, err := c.SpawnService(t.Context())
		require.NoError(t, err)
		task, err := c.Spawn(svc.Context())
		require.NoError(t, err)
		require.NoError(t, st.Suspend(svc.ID()))

		_, err = svc.Heartbeat(t.Context())
		require.ErrorIs(t, err, caracal.ErrSuspended)
		assert.Contains(t, err.Error(), "Client.Resume, then AttachService")

		_, err = c.AttachService(t.Context(), svc.ID())
		require.ErrorIs(t, err, caracal.ErrSuspended)
		assert.Contains(t, err.Error(), "Client.Resume it first")

		time.Sleep(10 * time.Minute) // far past the lease: resume restarts the deadline
		n, err := c.Resume(t.Context(), svc.ID())
		require.NoError(t, err)
		assert.Equal(t, 2, n, "the service and its task")
		for _, id := range []string{svc.ID(), task.ID()} {
			info, _ := st.SessionInfo(id)
			assert.Equal(t, "active", info.Status, id)
		}

		again, err := c.AttachService(t.Context(), svc.ID())
		require.NoError(t, err)
		assert.Equal(t, int64(2), again.Generation())
		_, err = again.Heartbeat(t.Context())
		require.NoError(t, err)
		require.NoError(t, again.Close(t.Context()))
	})
}

func TestResumeErrors(t *testing.T) {
	st, c, oc := twoApplications(t, caracaltest.InMemory())

	svc, err := c.SpawnService(t.Context())
	require.NoError(t, err)
	defer svc.Close(context.Background())

	// Not suspended: a typed conflict, nothing changed.
	_, err = c.Resume(t.Context(), svc.ID())
	var apiErr *caracal.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 409, apiErr.StatusCode)
	assert.Equal(t, "session_not_found_or_not_suspended", apiErr.Code)
	assert.ErrorIs(t, err, caracal.ErrConflict)
	assert.Contains(t, err.Error(), svc.ID())

	// Another application's session.
	require.NoError(t, st.Suspend(svc.ID()))
	_, err = oc.Resume(t.Context(), svc.ID())
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "application_ownership_required", apiErr.Code)
	assert.ErrorIs(t, err, caracal.ErrAccessDenied)
	info, _ := st.SessionInfo(svc.ID())
	assert.Equal(t, "suspended", info.Status)

	// Refused before any request.
	before := st.Count(caracaltest.RouteResume)
	_, err = c.Resume(t.Context(), "")
	assert.ErrorIs(t, err, caracal.ErrInvalidRequest)
	require.NoError(t, oc.Close(t.Context()))
	_, err = oc.Resume(t.Context(), svc.ID())
	assert.ErrorIs(t, err, caracal.ErrClosed)
	assert.Equal(t, before, st.Count(caracaltest.RouteResume))
}

// An attached service continues the trace bound to the context it is
// attached with, as a spawned one does; with none bound it starts its own.
func TestAttachServiceContinuesTheContextTrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, c := serviceStack(t)
		svc, err := c.SpawnService(t.Context())
		require.NoError(t, err)
		task, err := c.Spawn(t.Context())
		require.NoError(t, err)
		taken, err := c.AttachService(task.Context(), svc.ID())
		require.NoError(t, err)
		assert.Equal(t, task.Agent().TraceID(), taken.Agent().TraceID())

		again, err := c.AttachService(t.Context(), svc.ID())
		require.NoError(t, err)
		assert.NotEmpty(t, again.Agent().TraceID())
		assert.NotEqual(t, task.Agent().TraceID(), again.Agent().TraceID())
		require.NoError(t, again.Close(t.Context()))
		require.NoError(t, task.Close(t.Context()))
	})
}
