package caracal_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// holdRetire holds every retire of session id until release is closed,
// then fails it as a connection that dropped.
type holdRetire struct {
	base    http.RoundTripper
	id      string
	release chan struct{}
}

func (h *holdRetire) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodDelete && h.id != "" && strings.HasSuffix(req.URL.Path, "/agents/"+h.id) {
		<-h.release
		return nil, errors.New("connection dropped")
	}
	return h.base.RoundTrip(req)
}

// childRetireHeldAcrossParentRetire starts, inside a synctest bubble, a
// parent and a child on a client whose retire of the child is held by rt,
// closes the child (its error comes on childErr once rt.release is
// closed), then retires the parent while the child's retire is held.
func childRetireHeldAcrossParentRetire(t *testing.T) (st *caracaltest.Stack, c *caracal.Client, rt *holdRetire, child *caracal.Session, childErr <-chan error) {
	t.Helper()
	st = caracaltest.Start(t, caracaltest.InMemory())
	rt = &holdRetire{base: st.Transport(), release: make(chan struct{})}
	c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: rt}))
	require.NoError(t, err)
	parent, err := c.Spawn(t.Context())
	require.NoError(t, err)
	child, err = c.Spawn(parent.Context())
	require.NoError(t, err)

	rt.id = child.ID()
	errs := make(chan error, 1)
	go func() { errs <- child.Close(context.Background()) }()
	synctest.Wait() // the child's retire is held
	require.NoError(t, parent.Close(t.Context()))
	return st, c, rt, child, errs
}

// A child whose own retire is in flight when its parent's retire ends it
// on the Coordinator, and then fails, is let go as one whose retire failed
// before: the session is retired, so the client neither keeps its handle
// nor reports it as left running.
func TestChildRetireFailingAfterParentRetiredIsLetGo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, c, rt, child, childErr := childRetireHeldAcrossParentRetire(t)
		info, ok := st.SessionInfo(child.ID())
		require.True(t, ok)
		require.Equal(t, "terminated", info.Status, "the Coordinator ended the child with its parent")
		close(rt.release)
		assert.NoError(t, <-childErr, "the child's session is retired")

		synctest.Wait()
		open, _, _ := caracal.TrackedSizes(c)
		assert.Zero(t, open, "the child's handle is still held")
		assert.Zero(t, caracal.IndexedSessions(c))
		assert.NoError(t, c.Close(context.Background()), "Client.Close reports a retired session as left running")
	})
}

// Client.Close forgets the delegations that the sessions it could not
// retire received: nothing can revoke through them once it is closed.
func TestClientCloseForgetsReceivedOfUnretired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		rt := &holdRetire{base: st.Transport(), release: make(chan struct{})}
		close(rt.release)
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: rt}))
		require.NoError(t, err)
		ctx := t.Context()
		root, err := c.Spawn(ctx)
		require.NoError(t, err)
		giver, err := c.Spawn(root.Context(), caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{MaxHops: 3}, time.Hour)))
		require.NoError(t, err)
		peer, err := c.Spawn(ctx, caracal.WithoutParent())
		require.NoError(t, err)
		_, err = c.Delegate(giver.Context(), peer.ID(), caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{MaxHops: 2}, time.Minute))
		require.NoError(t, err)
		_, received, _ := caracal.TrackedSizes(c)
		require.Equal(t, 1, received)

		rt.id = peer.ID()
		require.Error(t, c.Close(context.Background()), "the peer's retire failed")
		open, received, _ := caracal.TrackedSizes(c)
		assert.Zero(t, open)
		assert.Zero(t, received, "the peer's received delegation is still held")
		assert.Zero(t, caracal.IndexedSessions(c))
	})
}
