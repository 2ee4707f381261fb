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
