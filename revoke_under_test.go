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
