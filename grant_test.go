package caracal_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

func TestGrantNone(t *testing.T) {
	st, c := newStack(t)
	_, child := narrowReader(t, c, caracal.Constraints{}, "reader")
	none, err := c.Spawn(child.Context(), caracal.WithLabels("reader"), caracal.WithGrant(caracal.Grant.None()))
	require.NoError(t, err)
	assert.Empty(t, none.Agent().DelegationID())
	assert.Equal(t, 1, none.Agent().Hop())
	assert.Contains(t, string(startsOf(st)[2].Body), `"parent_authority":"none"`)
	_, err = caracal.MintUse(none.Context(), c, "resource://tickets", "tickets:read")
	assert.Error(t, err, "no inherited authority")
}

func TestInheritUnderNarrowedParentMirrorsEdge(t *testing.T) {
	st, c := newStack(t)
	_, child := narrowReader(t, c, caracal.Constraints{MaxHops: 2}, "reader")
	gc, err := c.Spawn(child.Context(), caracal.WithLabels("reader"))
	require.NoError(t, err)
	a := gc.Agent()
	require.NotEmpty(t, a.DelegationID(), "the server mirrored the parent's edge")
	assert.NotEqual(t, child.Agent().DelegationID(), a.DelegationID())
	assert.Equal(t, child.Agent().DelegationID(), a.ParentDelegationID())
	assert.Equal(t, 2, a.Hop())
	edge, _ := st.EdgeInfo(a.DelegationID())
	assert.Equal(t, []string{"tickets:read"}, edge.Scopes)
	scopes, hops, ok := caracal.KnownEdge(a)
	require.True(t, ok)
	assert.Equal(t, []string{"tickets:read"}, scopes)
	assert.Equal(t, 2, hops)
	use, err := caracal.MintUse(gc.Context(), c, "resource://tickets", "tickets:read")
	require.NoError(t, err, "MaxHops 2 on the root edge lets the mirror mint")
	assert.Equal(t, "gateway", use)
}

func TestInheritTakesTheEdgeTheParentPresents(t *testing.T) {
	st, c := newStack(t)
	root, giver := narrowReader(t, c, caracal.Constraints{MaxHops: 4}, "writer")
	peer, err := c.Spawn(root.Context(), caracal.WithLabels("writer"), caracal.WithGrant(caracal.Grant.None()))
	require.NoError(t, err)
	// The peer receives two delegations and works under the first.
	first, err := c.Delegate(giver.Context(), peer.ID(), caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{MaxHops: 3}, time.Minute))
	require.NoError(t, err)
	_, err = c.Delegate(giver.Context(), peer.ID(), caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{MaxHops: 2}, time.Minute))
	require.NoError(t, err)
	ctx, err := c.AcceptDelegation(peer.Context(), first.ID)
	require.NoError(t, err)

	child, err := c.Spawn(ctx, caracal.WithLabels("writer"))
	require.NoError(t, err, "the parent's context names which edge to inherit")
	defer child.Close(context.Background())
	a := child.Agent()
	assert.Equal(t, first.ID, a.ParentDelegationID())
	edge, _ := st.EdgeInfo(a.DelegationID())
	assert.Equal(t, []string{"tickets:read"}, edge.Scopes)

	// A parent context without an edge sends none: the root case.
	plain, err := c.Spawn(root.Context(), caracal.WithLabels("reader"))
	require.NoError(t, err)
	defer plain.Close(context.Background())
	checked := 0
	for _, r := range st.Requests() {
		if r.Pattern == caracaltest.RouteStart && strings.Contains(string(r.Body), `"parent_id":"`+root.ID()+`"`) &&
			strings.Contains(string(r.Body), `"parent_authority":"inherit"`) {
			assert.NotContains(t, string(r.Body), "inherit_parent_edge_id")
			checked++
		}
	}
	assert.Equal(t, 1, checked)
}

func TestDelegateAndAccept(t *testing.T) {
	st, c := newStack(t)
	root, giver := narrowReader(t, c, caracal.Constraints{MaxHops: 3}, "reader")
	peer, err := c.Spawn(root.Context(), caracal.WithLabels("reader"), caracal.WithGrant(caracal.Grant.None()))
	require.NoError(t, err)
	st.ResetRecord()

	_, err = c.Delegate(t.Context(), peer.ID(), caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{}, time.Minute))
	assert.ErrorIs(t, err, caracal.ErrNoSession)
	_, err = c.Delegate(giver.Context(), peer.ID(), caracal.Grant.None())
	assert.ErrorIs(t, err, caracal.ErrInvalidGrant)
	_, err = c.Delegate(giver.Context(), giver.ID(), caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{}, time.Minute))
	assert.ErrorIs(t, err, caracal.ErrInvalidGrant)
	_, err = c.Delegate(giver.Context(), peer.ID(), caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{}, 0))
	assert.ErrorContains(t, err, "needs a TTL")
	_, err = c.Delegate(giver.Context(), peer.ID(), caracal.Grant.Narrow([]string{"tickets:write"}, "", caracal.Constraints{}, time.Minute))
	assert.ErrorIs(t, err, caracal.ErrInvalidGrant, "wider than the giver's own edge")
	assert.Zero(t, st.Count(caracaltest.RouteDelegate))

	before := time.Now().Truncate(time.Millisecond) // the server's times have millisecond precision
	d, err := c.Delegate(giver.Context(), peer.ID(), caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{MaxHops: 2}, time.Minute))
	require.NoError(t, err)
	after := time.Now()
	assert.NotEmpty(t, d.ID)
	assert.Equal(t, []string{"tickets:read"}, d.Scopes)
	assert.Equal(t, "resource://tickets", d.Resource)
	assert.Equal(t, peer.ID(), d.TargetSessionID)
	assert.WithinRange(t, d.ExpiresAt, before.Add(time.Minute), after.Add(time.Minute), "the delegation's TTL")
	for _, r := range st.Requests() {
		if r.Pattern == caracaltest.RouteDelegate {
			assert.Regexp(t, `^[0-9a-f]{32}$`, r.Header.Get("Idempotency-Key"))
			assert.Contains(t, string(r.Body), `"parent_edge_id":"`+giver.Agent().DelegationID()+`"`)
		}
	}

	_, err = c.AcceptDelegation(peer.Context(), "no-such-edge")
	assert.ErrorIs(t, err, caracal.ErrNotFound)
	assert.ErrorContains(t, err, "is not an active delegation")
	st.Inject(caracaltest.RouteInbound, caracaltest.Fault{Status: 503, Times: 2})
	_, err = c.AcceptDelegation(peer.Context(), "no-such-edge")
	assert.ErrorIs(t, err, caracal.ErrUnavailable)
	assert.NotContains(t, err.Error(), "is not an active delegation", "an outage says nothing about the edge")
	assert.ErrorContains(t, err, "SkipInboundCheck")
	ctx, err := c.AcceptDelegation(peer.Context(), "no-such-edge", caracal.SkipInboundCheck())
	require.NoError(t, err, "bound without asking")
	assert.Equal(t, "no-such-edge", mustAgent(t, ctx).DelegationID())

	ctx, err = c.AcceptDelegation(peer.Context(), d.ID)
	require.NoError(t, err)
	a := mustAgent(t, ctx)
	assert.Equal(t, d.ID, a.DelegationID())
	assert.Equal(t, peer.ID(), a.SessionID())
	assert.Equal(t, peer.Agent().Hop()+1, a.Hop())
	assert.Empty(t, peer.Agent().DelegationID(), "the peer's own agent is unchanged")
	use, err := caracal.MintUse(ctx, c, "resource://tickets", "tickets:read")
	require.NoError(t, err)
	assert.Equal(t, "gateway", use)

	require.NoError(t, c.RevokeDelegation(t.Context(), d.ID))
	edge, _ := st.EdgeInfo(d.ID)
	assert.Equal(t, "revoked", edge.Status)
	_, err = c.AcceptDelegation(peer.Context(), d.ID)
	assert.Error(t, err)
}

// An edge d deep mints only with MaxHops >= d, and each edge allows at most
// one hop less than its parent (PROTOCOL §6.5, §6.6): a grant that breaks
// either is refused before any call, with the numbers that would work.
func TestGrantThatCouldNeverMintIsRefused(t *testing.T) {
	st, c := newStack(t)
	root, giver := narrowReader(t, c, caracal.Constraints{MaxHops: 2}, "reader")
	peer, err := c.Spawn(root.Context(), caracal.WithLabels("reader"), caracal.WithGrant(caracal.Grant.None()))
	require.NoError(t, err)
	read := []string{"tickets:read"}
	delegations := st.Count(caracaltest.RouteDelegate)

	const want = "leaves no usable hop for an edge 2 deep; give the parent's Grant.Narrow Constraints.MaxHops >= 3 and this one 2"
	_, err = c.Delegate(giver.Context(), peer.ID(), caracal.Grant.Narrow(read, "", caracal.Constraints{}, time.Minute))
	require.ErrorIs(t, err, caracal.ErrInvalidGrant)
	assert.ErrorContains(t, err, want)
	_, err = c.Delegate(giver.Context(), peer.ID(), caracal.Grant.Narrow(read, "", caracal.Constraints{MaxHops: 2}, time.Minute))
	assert.ErrorContains(t, err, want)
	_, err = c.Spawn(giver.Context(), caracal.WithLabels("reader"), caracal.WithGrant(caracal.Grant.Narrow(read, "", caracal.Constraints{}, time.Minute)))
	assert.ErrorContains(t, err, want)
	assert.Equal(t, delegations, st.Count(caracaltest.RouteDelegate), "refused before any call")

	// With room for it, the delegated peer mints; a default MaxHops is
	// refused with the number that works.
	_, wide := narrowReader(t, c, caracal.Constraints{MaxHops: 3}, "reader")
	_, err = c.Delegate(wide.Context(), peer.ID(), caracal.Grant.Narrow(read, "", caracal.Constraints{}, time.Minute))
	assert.ErrorContains(t, err, "an edge 2 deep can mint only with MaxHops >= 2; give this grant Constraints.MaxHops 2")
	d, err := c.Delegate(wide.Context(), peer.ID(), caracal.Grant.Narrow(read, "", caracal.Constraints{MaxHops: 2}, time.Minute))
	require.NoError(t, err)
	ctx, err := c.AcceptDelegation(peer.Context(), d.ID)
	require.NoError(t, err)
	use, err := caracal.MintUse(ctx, c, "resource://tickets", "tickets:read")
	require.NoError(t, err)
	assert.Equal(t, "gateway", use)

	// Server refusals name what was asked.
	_, err = c.Delegate(wide.Context(), "no-such-session", caracal.Grant.Narrow(read, "", caracal.Constraints{MaxHops: 2}, time.Minute))
	require.ErrorIs(t, err, caracal.ErrNotFound)
	assert.ErrorContains(t, err, `delegating "tickets:read" on resource://tickets from session `+wide.ID()+" to session no-such-session")
	require.NoError(t, c.RevokeDelegation(t.Context(), d.ID))
	err = c.RevokeDelegation(t.Context(), d.ID)
	assert.ErrorIs(t, err, caracal.ErrNotFound, "a revoked edge is no longer found")
	assert.ErrorContains(t, err, "revoking delegation "+d.ID)
}
