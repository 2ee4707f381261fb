package caracal_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// Caracal's ids are UUIDs, and a UUID names the same thing in either case
// (RFC 9562 §4). An id that reaches a program upper-cased, from a log or
// another system, still names its session or edge.
func TestUpperCaseIDsNameTheSameSessionsAndEdges(t *testing.T) {
	st, c := newStack(t)
	root, giver := narrowReader(t, c, caracal.Constraints{MaxHops: 4}, "writer")
	peer, err := c.Spawn(root.Context(), caracal.WithLabels("writer"), caracal.WithGrant(caracal.Grant.None()))
	require.NoError(t, err)
	defer peer.Close(context.Background())
	require.NotEqual(t, peer.ID(), strings.ToUpper(peer.ID()))

	d, err := c.Delegate(giver.Context(), strings.ToUpper(peer.ID()), caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{MaxHops: 2}, time.Minute))
	require.NoError(t, err)
	edge, ok := st.EdgeInfo(d.ID)
	require.True(t, ok)
	assert.Equal(t, peer.ID(), edge.Target)

	ctx, err := c.AcceptDelegation(peer.Context(), strings.ToUpper(d.ID))
	require.NoError(t, err)
	a, _ := caracal.FromContext(ctx)
	assert.Equal(t, d.ID, a.DelegationID(), "the context presents the edge as the Coordinator spells it")
	again, err := c.AcceptDelegation(ctx, d.ID)
	require.NoError(t, err)
	assert.Equal(t, ctx, again, "the same edge, whatever its case")
	use, err := caracal.MintUse(ctx, c, "resource://tickets", "tickets:read")
	require.NoError(t, err)
	assert.Equal(t, "gateway", use)

	require.NoError(t, c.RevokeDelegation(t.Context(), strings.ToUpper(d.ID)))
	edge, _ = st.EdgeInfo(d.ID)
	assert.Equal(t, "revoked", edge.Status)
}

func TestUpperCaseServiceIDAttaches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, c := serviceStack(t)
		svc, err := c.SpawnService(t.Context())
		require.NoError(t, err)
		defer svc.Close(context.Background())

		attached, err := c.AttachService(t.Context(), strings.ToUpper(svc.ID()))
		require.NoError(t, err)
		defer attached.Close(context.Background())
		assert.Equal(t, svc.ID(), attached.ID())
		_, err = attached.Heartbeat(t.Context())
		require.NoError(t, err, "the Coordinator's answer names the same session")
	})
}

func TestUpperCaseServiceIDResumes(t *testing.T) {
	st, c := serviceStack(t)
	svc, err := c.SpawnService(t.Context())
	require.NoError(t, err)
	defer svc.Close(context.Background())
	require.NoError(t, st.Suspend(svc.ID()))

	n, err := c.Resume(t.Context(), strings.ToUpper(svc.ID()))
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	info, _ := st.SessionInfo(svc.ID())
	assert.Equal(t, "active", info.Status)
}

func TestUpperCaseApprovalIDWaits(t *testing.T) {
	g := startGoverned(t)
	ae := g.heldDelete(t)
	require.NotEqual(t, ae.ApprovalID, strings.ToUpper(ae.ApprovalID))
	require.NoError(t, g.st.Approve(ae.ApprovalID))

	require.NoError(t, g.c.WaitApproval(t.Context(), strings.ToUpper(ae.ApprovalID)))
}
