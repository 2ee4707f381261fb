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

// Revoking a delegation ends the sessions that held it, and their subtrees
// (PROTOCOL §4.8). The sessions this client holds end here too, at once:
// their Contexts end, and they make no more calls.
func TestRevokeEndsTheSessionsThatHeldTheDelegation(t *testing.T) {
	st, c := newStack(t)
	root, child := narrowReader(t, c, caracal.Constraints{MaxHops: 3}, "reader")
	grandchild, err := c.Spawn(child.Context(), caracal.WithLabels("reader"))
	require.NoError(t, err)
	sibling, err := c.Spawn(root.Context(), caracal.WithLabels("reader"))
	require.NoError(t, err)
	defer sibling.Close(context.Background())

	require.NoError(t, c.RevokeDelegation(t.Context(), child.Agent().DelegationID()))
	for name, s := range map[string]*caracal.Session{"holder": child, "its child": grandchild} {
		require.Error(t, s.Context().Err(), name)
		assert.ErrorIs(t, context.Cause(s.Context()), caracal.ErrSessionClosed, name)
		_, err = c.Headers(s.Context())
		assert.ErrorIs(t, err, caracal.ErrSessionClosed, name)
		assert.ErrorContains(t, err, "delegation "+child.Agent().DelegationID()+" was revoked", "%s: the error says why", name)
		info, _ := st.SessionInfo(s.ID())
		assert.Equal(t, "terminated", info.Status, name)
	}
	assert.Contains(t, context.Cause(child.Context()).Error(), "delegation "+child.Agent().DelegationID()+" was revoked")
	for _, s := range []*caracal.Session{root, sibling} {
		require.NoError(t, s.Context().Err(), "a session the revoke did not end goes on")
		_, err = c.Headers(s.Context())
		require.NoError(t, err)
	}
	require.NoError(t, grandchild.Close(t.Context()), "gone counts as retired")
	require.NoError(t, child.Close(t.Context()))
	require.NoError(t, c.Close(t.Context()), "nothing is left running")
}

// The receiver of a Delegate, or of an AcceptDelegation, in this client is
// known to hold the edge.
func TestRevokeEndsTheReceiverOfADelegation(t *testing.T) {
	st, c := newStack(t)
	other, _ := newClient(t, st)
	giver, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	defer giver.Close(context.Background())
	read := caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Minute)

	// Delegated by this client.
	peer, err := c.Spawn(t.Context(), caracal.WithLabels("reader"))
	require.NoError(t, err)
	d, err := c.Delegate(giver.Context(), peer.ID(), read)
	require.NoError(t, err)
	require.NoError(t, c.RevokeDelegation(t.Context(), d.ID))
	assert.ErrorIs(t, context.Cause(peer.Context()), caracal.ErrSessionClosed)

	// Delegated by another client, accepted by this one.
	peer2, err := other.Spawn(t.Context(), caracal.WithLabels("reader"))
	require.NoError(t, err)
	d2, err := c.Delegate(giver.Context(), peer2.ID(), read)
	require.NoError(t, err)
	ctx, err := other.AcceptDelegation(peer2.Context(), d2.ID)
	require.NoError(t, err)
	require.NoError(t, other.RevokeDelegation(t.Context(), d2.ID))
	assert.ErrorIs(t, context.Cause(peer2.Context()), caracal.ErrSessionClosed)
	_, err = other.Headers(ctx)
	assert.ErrorIs(t, err, caracal.ErrSessionClosed)
	require.NoError(t, other.Close(t.Context()))
}

func TestRevokeEndsANarrowedService(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, c := serviceStack(t)
		root, err := c.SpawnService(t.Context(), caracal.WithLabels("dispatcher"))
		require.NoError(t, err)
		defer root.Close(context.Background())
		lost := make(chan error, 1)
		svc, err := c.SpawnService(root.Context(), caracal.OnLeaseLost(func(err error) { lost <- err }),
			caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Hour)))
		require.NoError(t, err)

		require.NoError(t, c.RevokeDelegation(t.Context(), svc.Agent().DelegationID()))
		assert.ErrorIs(t, svc.Err(), caracal.ErrLeaseLost)
		assert.ErrorIs(t, <-lost, caracal.ErrLeaseLost)
		require.NoError(t, svc.Close(t.Context()))
		require.NoError(t, root.Err(), "the parent service goes on")
	})
}

// A session the revoke ended closes with its own Context, which has ended:
// that is no reason to give up the retire (which finds it gone).
func TestRevokeEndedSessionClosesWithItsOwnContext(t *testing.T) {
	st, c := newStack(t)
	_, child := narrowReader(t, c, caracal.Constraints{MaxHops: 3}, "reader")
	grandchild, err := c.Spawn(child.Context(), caracal.WithLabels("reader"))
	require.NoError(t, err)
	require.NoError(t, c.RevokeDelegation(t.Context(), child.Agent().DelegationID()))
	retires := st.Count(caracaltest.RouteRetire)

	require.NoError(t, child.Close(child.Context()))
	require.NoError(t, grandchild.Close(grandchild.Context()))
	// The child's retire ended the grandchild with it: its Close needs no call.
	assert.Equal(t, retires+1, st.Count(caracaltest.RouteRetire))
	require.NoError(t, c.Close(t.Context()))
}

// A child started under a session that received the revoked delegation,
// but from the session's own Context (so without the delegation), ends
// with it, and its error says why.
func TestRevokeEndsAChildOfTheReceiver(t *testing.T) {
	_, c := newStack(t)
	giver, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	defer giver.Close(context.Background())
	peer, err := c.Spawn(t.Context(), caracal.WithLabels("reader"))
	require.NoError(t, err)
	kid, err := c.Spawn(peer.Context(), caracal.WithLabels("reader"))
	require.NoError(t, err)
	require.Empty(t, kid.Agent().ParentDelegationID())
	d, err := c.Delegate(giver.Context(), peer.ID(), caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Minute))
	require.NoError(t, err)

	require.NoError(t, c.RevokeDelegation(t.Context(), d.ID))
	_, err = c.Headers(kid.Context())
	assert.ErrorIs(t, err, caracal.ErrSessionClosed)
	assert.ErrorContains(t, err, "delegation "+d.ID+" was revoked")
	assert.ErrorContains(t, err, "session "+kid.ID()+" was started under it")
	require.NoError(t, kid.Close(t.Context()))
	require.NoError(t, peer.Close(t.Context()))
}

// A Grant.None child of the holder presents no delegation, but was started
// under the revoked one: it ends, here in another client of the application
// that started it under the holder, while a session that presents no
// delegation and was not started under it goes on.
func TestRevokeEndsAGrantNoneChildOfTheHolderOnly(t *testing.T) {
	st, c := newStack(t)
	other, _ := newClient(t, st)
	root, holder := narrowReader(t, c, caracal.Constraints{MaxHops: 3}, "reader")
	defer root.Close(context.Background())
	kid, err := other.Spawn(holder.Context(), caracal.WithGrant(caracal.Grant.None()))
	require.NoError(t, err)
	require.Empty(t, kid.Agent().DelegationID())
	otherRoot, err := other.Spawn(t.Context())
	require.NoError(t, err)
	defer otherRoot.Close(context.Background())

	require.NoError(t, other.RevokeDelegation(t.Context(), holder.Agent().DelegationID()))
	info, _ := st.SessionInfo(kid.ID())
	require.Equal(t, "terminated", info.Status, "the Coordinator ended it with the holder")
	assert.ErrorIs(t, context.Cause(kid.Context()), caracal.ErrSessionClosed)
	require.NoError(t, otherRoot.Context().Err(), "a session with no delegation goes on")
	require.NoError(t, kid.Close(t.Context()))
}

// A revoke the Coordinator refuses (the receiver of a delegation is not its
// issuer: 403 issuer_ownership_required) revoked nothing: the session that
// holds the delegation goes on, here and on the Coordinator.
func TestRefusedRevokeLeavesTheHolderRunning(t *testing.T) {
	x := newThreeApps(t)
	giver, err := x.b.Spawn(t.Context(), caracal.WithLabels("relay"))
	require.NoError(t, err)
	defer giver.Close(context.Background())
	peer, err := x.c.Spawn(t.Context(), caracal.WithLabels("worker"))
	require.NoError(t, err)
	d, err := x.b.Delegate(giver.Context(), peer.ID(),
		caracal.Grant.Narrow([]string{"c:read"}, "resource://c-api", caracal.Constraints{}, time.Minute), caracal.ToApplication("app-c"))
	require.NoError(t, err)
	ctx, err := x.c.AcceptDelegation(peer.Context(), d.ID)
	require.NoError(t, err)

	err = x.c.RevokeDelegation(t.Context(), d.ID)
	var ae *caracal.Error
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, 403, ae.StatusCode)
	assert.Equal(t, "issuer_ownership_required", ae.Code)
	require.NoError(t, peer.Context().Err(), "the receiver goes on")
	_, err = x.c.Headers(ctx)
	require.NoError(t, err, "the accepted delegation is still usable")
	info, _ := x.st.SessionInfo(peer.ID())
	assert.Equal(t, "active", info.Status)
	require.NoError(t, peer.Close(t.Context()))
}
