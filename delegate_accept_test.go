package caracal_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// An AcceptDelegation whose context ended gives the context's error, not
// advice to try again or to skip the check.
func TestAcceptDelegationWithAnEndedContext(t *testing.T) {
	_, c := newStack(t)
	giver, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	defer giver.Close(context.Background())
	peer, err := c.Spawn(t.Context(), caracal.WithLabels("reader"))
	require.NoError(t, err)
	defer peer.Close(context.Background())
	d, err := c.Delegate(giver.Context(), peer.ID(), caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Minute))
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(peer.Context())
	cancel()
	_, err = c.AcceptDelegation(ctx, d.ID)
	require.ErrorIs(t, err, context.Canceled)
	assert.NotContains(t, err.Error(), "try again")
	assert.NotContains(t, err.Error(), "SkipInboundCheck")
}

// A session that presents a delegation of its own and accepts another one
// presents the accepted edge, with its own as the parent, and what it
// narrows from then is judged by the accepted edge, not by the limits of the
// one it presented before.
func TestAcceptDelegationReplacesThePresentedEdge(t *testing.T) {
	_, c := newStack(t)
	root, holder := narrowReader(t, c, caracal.Constraints{MaxHops: 1}, "reader")
	defer root.Close(context.Background())
	giver, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	defer giver.Close(context.Background())
	narrow := caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, 30*time.Second)
	_, err = c.Spawn(holder.Context(), caracal.WithLabels("reader"), caracal.WithGrant(narrow))
	require.ErrorIs(t, err, caracal.ErrInvalidGrant, "the holder's own edge allows no delegation under it")

	d, err := c.Delegate(giver.Context(), holder.ID(),
		caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{MaxHops: 3}, time.Minute))
	require.NoError(t, err)
	ctx, err := c.AcceptDelegation(holder.Context(), d.ID)
	require.NoError(t, err)
	a := mustAgent(t, ctx)
	assert.Equal(t, d.ID, a.DelegationID())
	assert.Equal(t, holder.Agent().DelegationID(), a.ParentDelegationID())

	kid, err := c.Spawn(ctx, caracal.WithLabels("reader"), caracal.WithGrant(narrow))
	require.NoError(t, err, "the accepted edge allows a delegation under it")
	require.NoError(t, kid.Close(t.Context()))
}
