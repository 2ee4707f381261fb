package caracal_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A child whose start is on its way back when its parent's session is
// retired through another handle on it (a spawn replayed under the caller's
// key) is forgotten as one under the retiring handle is: the Coordinator
// ended it, and closing it calls nobody.
func TestChildOfATwinStartedWhileTheSessionRetiresIsForgotten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		rt := &hookStart{base: st.Transport()}
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: rt}))
		require.NoError(t, err)
		ctx := t.Context()
		first, err := c.Spawn(ctx, caracal.WithIdempotencyKey("job-21"))
		require.NoError(t, err)
		twin, err := c.Spawn(ctx, caracal.WithIdempotencyKey("job-21"))
		require.NoError(t, err)
		require.Equal(t, first.ID(), twin.ID(), "the start was replayed")

		rt.once = sync.Once{}
		rt.hook = func() { require.NoError(t, first.Close(context.Background())) }
		child, err := c.Spawn(ctx, caracal.WithParent(twin.Agent()))
		require.NoError(t, err)
		info, ok := st.SessionInfo(child.ID())
		require.True(t, ok)
		require.Equal(t, "terminated", info.Status, "the Coordinator ended the child with its parent")

		synctest.Wait()
		open, _, _ := caracal.TrackedSizes(c)
		assert.Zero(t, open, "a handle is still held")
		assert.Zero(t, caracal.IndexedSessions(c))
		retires := st.Count(caracaltest.RouteRetire)
		require.NoError(t, child.Close(ctx))
		assert.Equal(t, retires, st.Count(caracaltest.RouteRetire), "closing the child called the Coordinator")
		require.NoError(t, c.Close(context.Background()))
	})
}

// A child whose start is on its way back when its parent is retired ends
// with the cause its parent's Context ended with, as the Context of a child
// started before the retire does.
func TestChildStartedWhileParentRetiresEndsWithTheParentsCause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		rt := &hookStart{base: st.Transport()}
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: rt}))
		require.NoError(t, err)
		pctx, cancel := context.WithCancel(t.Context())
		parent, err := c.Spawn(pctx)
		require.NoError(t, err)

		rt.once = sync.Once{}
		rt.hook = func() {
			cancel()
			require.NoError(t, parent.Close(context.Background()))
		}
		child, err := c.Spawn(t.Context(), caracal.WithParent(parent.Agent()))
		require.NoError(t, err)
		require.ErrorIs(t, context.Cause(parent.Context()), context.Canceled)
		<-child.Context().Done()
		assert.ErrorIs(t, context.Cause(child.Context()), context.Canceled)
		require.NoError(t, c.Close(context.Background()))
	})
}

// A child whose own retire is under way when its parent's retire ends it
// stays held until that retire ends: Client.Close waits for it.
func TestClientCloseWaitsForAChildRetireUnderWayWhenItsParentRetired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, c, rt, _, childErr := childRetireHeldAcrossParentRetire(t)

		closed := make(chan error, 1)
		go func() { closed <- c.Close(context.Background()) }()
		synctest.Wait()
		early := false
		select {
		case err := <-closed:
			early = true
			closed <- err
		default:
		}
		close(rt.release)
		assert.NoError(t, <-childErr)
		assert.NoError(t, <-closed)
		assert.False(t, early, "Client.Close returned while the child's retire was under way")
	})
}
