package caracal_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// Closing a parent ends its children on the Coordinator. A child spawned
// with WithParent from a context that does not derive from the parent's
// learns it too: its Context is cancelled with the parent's cause, as a
// child spawned from the parent's Context is.
func TestParentCloseCancelsAChildSpawnedWithParent(t *testing.T) {
	st, c := newStack(t)
	root, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	child, err := c.Spawn(context.Background(), caracal.WithParent(root.Agent()), caracal.WithLabels("worker"))
	require.NoError(t, err)
	other, err := c.Spawn(context.Background(), caracal.WithParent(root.Agent()), caracal.WithLabels("worker"))
	require.NoError(t, err)

	// A child closed first stops listening to its parent: nothing happens
	// to it when the parent closes later.
	require.NoError(t, other.Close(t.Context()))
	select {
	case <-child.Context().Done():
		t.Fatal("the child's context ended while its parent runs")
	default:
	}

	require.NoError(t, root.Close(t.Context()))
	endsSoon(t, child.Context().Done(), "the child's context outlived its parent")
	assert.True(t, errors.Is(context.Cause(child.Context()), caracal.ErrSessionClosed), "cause %v", context.Cause(child.Context()))
	info, ok := st.SessionInfo(child.ID())
	require.True(t, ok)
	assert.Equal(t, "terminated", info.Status, "the Coordinator ended it with its parent")
	require.NoError(t, child.Close(t.Context()), "closing a child the parent took along is not an error")
}

// So does a task under a service this process holds, when the service ends.
func TestServiceCloseCancelsATaskSpawnedWithParent(t *testing.T) {
	_, c := newStack(t)
	svc, err := c.SpawnService(t.Context())
	require.NoError(t, err)
	task, err := c.Spawn(context.Background(), caracal.WithParent(svc.Agent()))
	require.NoError(t, err)
	require.NoError(t, svc.Close(t.Context()))
	endsSoon(t, task.Context().Done(), "the task's context outlived its service")
	assert.True(t, errors.Is(context.Cause(task.Context()), caracal.ErrSessionClosed), "cause %v", context.Cause(task.Context()))
	require.NoError(t, task.Close(t.Context()))
}

// A service started with WithParent under a service this process holds ends
// with it, as one started from the parent's Context does.
func TestParentServiceCloseEndsAChildServiceSpawnedWithParent(t *testing.T) {
	st, c := newStack(t)
	parent, err := c.SpawnService(t.Context())
	require.NoError(t, err)
	child, err := c.SpawnService(context.Background(), caracal.WithParent(parent.Agent()))
	require.NoError(t, err)
	require.NoError(t, parent.Close(t.Context()))
	endsSoon(t, child.Done(), "the child service outlived its parent")
	assert.True(t, errors.Is(context.Cause(child.Context()), caracal.ErrSessionClosed), "cause %v", context.Cause(child.Context()))
	require.NoError(t, child.Close(t.Context()))
	info, ok := st.SessionInfo(child.ID())
	require.True(t, ok)
	assert.Equal(t, "terminated", info.Status)
}

// endsSoon fails the test, instead of hanging it, if done is not closed:
// the 10 s bound guards against a hang and never paces the test.
func endsSoon(t *testing.T, done <-chan struct{}, failure string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal(failure)
	}
}

// A child the Coordinator ended with its parent is closed here too: Headers
// and the transport refuse it with ErrSessionClosed before any call, also
// under a context that outlives it, down to the grandchildren.
func TestParentCloseClosesItsChildrenForHeadersAndTransport(t *testing.T) {
	st, c := newStack(t)
	root, child := narrowReader(t, c, caracal.Constraints{MaxHops: 3}, "reader")
	grandchild, err := c.Spawn(child.Context(), caracal.WithLabels("reader"))
	require.NoError(t, err)
	_, err = c.Headers(grandchild.Context())
	require.NoError(t, err)

	require.NoError(t, root.Close(t.Context()))
	st.ResetRecord()
	hc := c.HTTPClient(caracal.WithScopes("tickets:read"))
	for _, s := range []*caracal.Session{child, grandchild} {
		for _, ctx := range []context.Context{s.Context(), caracal.NewContext(context.Background(), s.Agent())} {
			_, err := c.Headers(ctx)
			assert.ErrorIs(t, err, caracal.ErrSessionClosed, "headers of %s", s.ID())
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets/1", nil)
			require.NoError(t, err)
			_, err = hc.Do(req)
			assert.ErrorIs(t, err, caracal.ErrSessionClosed, "transport of %s", s.ID())
		}
	}
	assert.Empty(t, st.Requests(), "refused before any call")
	require.NoError(t, grandchild.Close(t.Context()))
	require.NoError(t, child.Close(t.Context()))
}

// Nor does anything start from such a session: a child spawned under it, a
// delegation from it, an edge accepted for it are refused with
// ErrSessionClosed before any call.
func TestEndedSessionStartsNothing(t *testing.T) {
	st, c := newStack(t)
	root, giver := narrowReader(t, c, caracal.Constraints{MaxHops: 3}, "reader")
	peer, err := c.Spawn(root.Context(), caracal.WithLabels("reader"), caracal.WithGrant(caracal.Grant.None()))
	require.NoError(t, err)
	d, err := c.Delegate(giver.Context(), peer.ID(), caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{MaxHops: 2}, time.Minute))
	require.NoError(t, err)

	require.NoError(t, root.Close(t.Context()))
	st.ResetRecord()
	bg := context.Background()
	_, err = c.Spawn(bg, caracal.WithParent(giver.Agent()))
	assert.ErrorIs(t, err, caracal.ErrSessionClosed)
	_, err = c.Spawn(caracal.NewContext(bg, root.Agent()))
	assert.ErrorIs(t, err, caracal.ErrSessionClosed)
	_, err = c.Delegate(caracal.NewContext(bg, giver.Agent()), peer.ID(), caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{MaxHops: 2}, time.Minute))
	assert.ErrorIs(t, err, caracal.ErrSessionClosed)
	_, err = c.AcceptDelegation(caracal.NewContext(bg, peer.Agent()), d.ID)
	assert.ErrorIs(t, err, caracal.ErrSessionClosed)
	assert.Empty(t, st.Requests(), "refused before any call")
}

// WithTraceID gives a child spawned under a parent its own trace id, on the
// agent and on the start's traceparent, instead of the parent's.
func TestWithTraceIDOverridesTheParentsTrace(t *testing.T) {
	st, c := newStack(t)
	parent, err := c.Spawn(t.Context())
	require.NoError(t, err)
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	require.NotEqual(t, id, parent.Agent().TraceID())
	child, err := c.Spawn(parent.Context(), caracal.WithTraceID(id))
	require.NoError(t, err)
	assert.Equal(t, id, child.Agent().TraceID())
	starts := startsOf(st)
	require.Len(t, starts, 2)
	assert.Contains(t, starts[1].Header.Get("Traceparent"), "-"+id+"-")
}

// A child spawned with WithParent from a context that does not derive from
// the parent's ends when the parent's Context ends for a reason other than
// a retire (a service parent's lost lease), with the parent's cause.
func TestParentLeaseLossEndsAChildSpawnedWithParent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c := serviceStack(t)
		svc, err := c.SpawnService(t.Context())
		require.NoError(t, err)
		child, err := c.Spawn(t.Context(), caracal.WithParent(svc.Agent()))
		require.NoError(t, err)

		st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Status: http.StatusConflict, Code: "session_lease_expired", Times: 1})
		_, err = svc.Heartbeat(t.Context())
		require.ErrorIs(t, err, caracal.ErrSuspended)
		synctest.Wait()
		select {
		case <-child.Context().Done():
		default:
			t.Fatal("the child's Context did not end with its parent's")
		}
		assert.ErrorIs(t, context.Cause(child.Context()), caracal.ErrSuspended)
	})
}

// A child's agent carries its parent's subject authority record (PROTOCOL
// §7.1), also when the lifecycle token was replaced between the two starts
// and the child's start was anchored to the new token's record.
func TestChildCarriesTheParentsSubjectRecordAfterATokenRefresh(t *testing.T) {
	st, c := newStack(t)
	parent, err := c.Spawn(t.Context())
	require.NoError(t, err)
	require.NotEmpty(t, parent.Agent().SubjectRecordID())

	st.Inject(caracaltest.RouteStart, caracaltest.Fault{Status: http.StatusUnauthorized, Code: "identity_revoked", Times: 1})
	child, err := c.Spawn(parent.Context())
	require.NoError(t, err)
	require.Equal(t, 2, st.Count(caracaltest.RouteToken), "the refused token was replaced")
	info, ok := st.SessionInfo(child.ID())
	require.True(t, ok)
	require.NotEqual(t, parent.Agent().SubjectRecordID(), info.SubjectRecordID, "the child's start was anchored to the new token")
	assert.Equal(t, parent.Agent().SubjectRecordID(), child.Agent().SubjectRecordID())
}

// A parent whose Context ended because the context it was spawned with was
// cancelled still runs on the Coordinator, but a child of it would have a
// Context that ends at once: Spawn refuses it before any call, as it does
// a parent whose session ended, instead of starting a session nobody can
// use.
func TestSpawnUnderAParentWhoseContextEndedStartsNothing(t *testing.T) {
	st, c := newStack(t)
	ctx, cancel := context.WithCancel(t.Context())
	root, err := c.Spawn(ctx, caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	cancel()
	<-root.Context().Done()

	st.ResetRecord()
	child, err := c.Spawn(context.Background(), caracal.WithParent(root.Agent()))
	if child != nil {
		t.Cleanup(func() { _ = child.Close(context.Background()) })
	}
	require.Error(t, err)
	assert.ErrorIs(t, err, caracal.ErrSessionClosed)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), root.ID())
	assert.Zero(t, st.Count(caracaltest.RouteStart), "refused before any call")

	require.NoError(t, root.Close(t.Context()))
}

// A parent whose TTL ran out is no longer active on the Coordinator, though
// nothing here ended it: a child's start is refused with 404
// parent_not_found, and the error says what that means and what to do.
func TestSpawnUnderAParentPastItsTTLSaysWhy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, c := newStack(t, caracaltest.InMemory())
		root, err := c.Spawn(t.Context(), caracal.WithTTL(time.Minute))
		require.NoError(t, err)
		time.Sleep(2 * time.Minute)

		_, err = c.Spawn(root.Context())
		var e *caracal.Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, "parent_not_found", e.Code)
		assert.ErrorIs(t, err, caracal.ErrNotFound)
		assert.Contains(t, err.Error(), root.ID())
		assert.Contains(t, err.Error(), "TTL")
		assert.Contains(t, err.Error(), "spawn under a session that is still active")
		require.NoError(t, c.Close(t.Context()))
	})
}
