package caracal_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// A Delegate made while presenting a delegation creates an edge under it
// (PROTOCOL §6.7): revoking the outer delegation revokes that edge too and
// ends its receiver (§4.8), which this client then ends as well.
func TestRevokeEndsTheReceiverOfADelegationMadeUnderIt(t *testing.T) {
	st, c := newStack(t)
	root, holder := narrowReader(t, c, caracal.Constraints{MaxHops: 3}, "reader")
	defer root.Close(context.Background())
	peer, err := c.Spawn(t.Context(), caracal.WithLabels("reader"))
	require.NoError(t, err)
	d, err := c.Delegate(holder.Context(), peer.ID(),
		caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{MaxHops: 2}, time.Minute))
	require.NoError(t, err)
	edge, ok := st.EdgeInfo(d.ID)
	require.True(t, ok)
	require.Equal(t, holder.Agent().DelegationID(), edge.ParentEdge, "made under the holder's edge")

	require.NoError(t, c.RevokeDelegation(t.Context(), holder.Agent().DelegationID()))
	info, _ := st.SessionInfo(peer.ID())
	require.Equal(t, "terminated", info.Status, "the Coordinator ended the receiver")
	assert.ErrorIs(t, context.Cause(peer.Context()), caracal.ErrSessionClosed)
	_, err = c.Headers(peer.Context())
	assert.ErrorIs(t, err, caracal.ErrSessionClosed)
	require.NoError(t, peer.Close(t.Context()))
	require.NoError(t, holder.Close(t.Context()))
}

// Delegations made under delegations made under the revoked one, at any
// depth, are revoked with it (PROTOCOL §4.8), and their receivers here end,
// however this client learnt of each edge: a narrowed session's own, or one
// it received and accepted.
func TestRevokeEndsTheReceiversDownAChainOfDelegations(t *testing.T) {
	st, c := newStack(t)
	root, holder := narrowReader(t, c, caracal.Constraints{MaxHops: 8}, "reader")
	defer root.Close(context.Background())
	// Started last to first, so that no one pass over this client's
	// sessions meets the chain in order.
	peers := make([]*caracal.Session, 2)
	for i := len(peers) - 1; i >= 0; i-- {
		var err error
		peers[i], err = c.Spawn(t.Context(), caracal.WithLabels("reader"))
		require.NoError(t, err)
	}
	under, err := c.Spawn(holder.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{MaxHops: 7}, 4*time.Minute)))
	require.NoError(t, err)
	from := under.Context()
	for i, peer := range peers {
		hops := 6 - i
		d, err := c.Delegate(from, peer.ID(),
			caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{MaxHops: hops}, time.Duration(hops)*20*time.Second))
		require.NoError(t, err)
		from, err = c.AcceptDelegation(peer.Context(), d.ID)
		require.NoError(t, err)
	}

	require.NoError(t, c.RevokeDelegation(t.Context(), holder.Agent().DelegationID()))
	for i, peer := range peers {
		info, _ := st.SessionInfo(peer.ID())
		require.Equal(t, "terminated", info.Status, "the Coordinator ended receiver %d", i)
		assert.ErrorIs(t, context.Cause(peer.Context()), caracal.ErrSessionClosed, "receiver %d", i)
		require.NoError(t, peer.Close(t.Context()))
	}
	require.NoError(t, root.Context().Err(), "the session that made the revoked delegation goes on")
}

// The delegations a session received here are kept up to 64: the oldest of
// 64 still ends it when revoked, and past that the oldest is forgotten.
func TestRevokeSeesTheLast64DelegationsASessionReceived(t *testing.T) {
	_, c := newStack(t)
	giver, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	defer giver.Close(context.Background())
	read := caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Minute)
	receive := func(n int) (*caracal.Session, string) {
		peer, err := c.Spawn(t.Context(), caracal.WithLabels("reader"))
		require.NoError(t, err)
		var first string
		for i := range n {
			d, err := c.Delegate(giver.Context(), peer.ID(), read)
			require.NoError(t, err)
			if i == 0 {
				first = d.ID
			}
		}
		return peer, first
	}

	peer, first := receive(64)
	assert.Equal(t, 64, caracal.ReceivedBy(c, peer))
	require.NoError(t, c.RevokeDelegation(t.Context(), first))
	assert.ErrorIs(t, context.Cause(peer.Context()), caracal.ErrSessionClosed)
	require.NoError(t, peer.Close(t.Context()))

	peer, _ = receive(65)
	defer peer.Close(context.Background())
	assert.Equal(t, 64, caracal.ReceivedBy(c, peer))
}
