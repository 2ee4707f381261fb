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

// A Grant.None child keeps its parent's hop but holds no edge, so an edge it
// narrows is a root edge (PROTOCOL §4.7: no active inbound edge), one deep:
// a narrowing under that edge is two deep, not three.
func TestNarrowUnderRootEdgeOfNoneChild(t *testing.T) {
	_, c := newStack(t)
	_, child := narrowReader(t, c, caracal.Constraints{}, "reader")
	none, err := c.Spawn(child.Context(), caracal.WithLabels("reader"), caracal.WithGrant(caracal.Grant.None()))
	require.NoError(t, err)
	read := []string{"tickets:read"}
	g, err := c.Spawn(none.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow(read, "", caracal.Constraints{MaxHops: 3}, 5*time.Minute)))
	require.NoError(t, err)
	assert.Empty(t, g.Agent().ParentDelegationID(), "a root edge")

	h, err := c.Spawn(g.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow(read, "", caracal.Constraints{MaxHops: 2}, time.Minute)))
	require.NoError(t, err, "an edge two deep under MaxHops 3 mints")
	use, err := caracal.MintUse(h.Context(), c, "resource://tickets", "tickets:read")
	require.NoError(t, err)
	assert.Equal(t, "gateway", use)
}

// An edge with a resource_id lets its children resolve only to that
// resource (PROTOCOL §6.5 rule 3), whatever Constraints.Resources also
// lists: a narrowing to another listed resource is refused before any call.
func TestNarrowUnderEdgeWithResourceIDKeepsToIt(t *testing.T) {
	st, c := newStack(t, caracaltest.WithResource(caracaltest.Resource{Identifier: "resource://ledger", Scopes: []string{"ledger:read"}}))
	root, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	giver, err := c.Spawn(root.Context(), caracal.WithLabels("reader"), caracal.WithGrant(caracal.Grant.Narrow(
		[]string{"tickets:read", "ledger:read"}, "resource://tickets",
		caracal.Constraints{MaxHops: 3, Resources: []string{"resource://tickets", "resource://ledger"}}, 5*time.Minute)))
	require.NoError(t, err)
	peer, err := c.Spawn(root.Context(), caracal.WithLabels("reader"), caracal.WithGrant(caracal.Grant.None()))
	require.NoError(t, err)
	sent := st.Count(caracaltest.RouteDelegate)

	_, err = c.Delegate(giver.Context(), peer.ID(), caracal.Grant.Narrow([]string{"ledger:read"}, "resource://ledger", caracal.Constraints{MaxHops: 2}, time.Minute))
	require.ErrorIs(t, err, caracal.ErrInvalidGrant)
	assert.ErrorContains(t, err, `resource resource://ledger is outside the parent's delegation (["resource://tickets"])`)
	assert.Equal(t, sent, st.Count(caracaltest.RouteDelegate), "refused before any call")

	_, err = c.Delegate(giver.Context(), peer.ID(), caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{MaxHops: 2}, time.Minute))
	require.NoError(t, err)

	// The Delegation names the resource its resource_id scopes it to.
	d, err := c.Delegate(root.Context(), peer.ID(), caracal.Grant.Narrow([]string{"ledger:read"}, "resource://ledger",
		caracal.Constraints{Resources: []string{"resource://tickets", "resource://ledger"}}, time.Minute))
	require.NoError(t, err)
	assert.Equal(t, "resource://ledger", d.Resource)
}

// Constraints.Resources scope a delegation in place of Narrow's resource:
// with none given the delegation mints for each listed resource, but with
// one given it mints for that one alone (the STS checks an edge's resource
// before its list, PROTOCOL §3.7 row 18), whatever else is listed.
func TestNarrowResourceWinsOverConstraintsResources(t *testing.T) {
	_, c := newStack(t, caracaltest.WithResource(caracaltest.Resource{Identifier: "resource://ledger", Scopes: []string{"ledger:read"}}),
		caracaltest.WithGrant("resource://ledger", "app-test", map[string][]string{"reader": {"ledger:read"}}))
	root, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	both := caracal.Constraints{Resources: []string{"resource://tickets", "resource://ledger"}}
	for _, tc := range []struct {
		resource string
		ledger   bool
	}{{"", true}, {"resource://tickets", false}} {
		child, err := c.Spawn(root.Context(), caracal.WithLabels("reader"), caracal.WithGrant(caracal.Grant.Narrow(
			[]string{"tickets:read", "ledger:read"}, tc.resource, both, 5*time.Minute)))
		require.NoError(t, err)
		_, err = caracal.MintUse(child.Context(), c, "resource://tickets", "tickets:read")
		require.NoError(t, err, "resource %q", tc.resource)
		_, err = caracal.MintUse(child.Context(), c, "resource://ledger", "ledger:read")
		if tc.ledger {
			assert.NoError(t, err, "resource %q", tc.resource)
		} else {
			assert.ErrorIs(t, err, caracal.ErrAccessDenied, "resource %q", tc.resource)
		}
	}
}

// A TTL is sent in whole seconds, rounded up, so it is checked against the
// parent's expiry as it will be sent: a TTL that fits only before rounding
// is refused before any call, not by the Coordinator.
func TestNarrowTTLIsCheckedAsSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient()
		require.NoError(t, err)
		defer c.Close(context.Background())
		root, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
		require.NoError(t, err)
		parent, err := c.Spawn(root.Context(), caracal.WithLabels("reader"), caracal.WithTTL(time.Hour),
			caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{MaxHops: 3}, 10*time.Second)))
		require.NoError(t, err)
		time.Sleep(600 * time.Millisecond)
		sent := st.Count(caracaltest.RouteStart)

		// 9.1 s ends 0.3 s before the parent's edge; sent as 10 s, it
		// would end 0.6 s after it.
		_, err = c.Spawn(parent.Context(), caracal.WithLabels("reader"),
			caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{MaxHops: 2}, 9100*time.Millisecond)))
		require.ErrorIs(t, err, caracal.ErrInvalidGrant)
		assert.ErrorContains(t, err, "runs past the parent's delegation expiry")
		assert.Equal(t, sent, st.Count(caracaltest.RouteStart), "refused before any call")

		child, err := c.Spawn(parent.Context(), caracal.WithLabels("reader"),
			caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{MaxHops: 2}, 9*time.Second)))
		require.NoError(t, err, "9 s fits")
		require.NoError(t, child.Close(context.Background()))
	})
}

// Accepting the edge a context already presents changes nothing: the hop
// count stays that of the first acceptance.
func TestAcceptDelegationTwiceKeepsTheHop(t *testing.T) {
	_, c := newStack(t)
	root, giver := narrowReader(t, c, caracal.Constraints{MaxHops: 3}, "reader")
	peer, err := c.Spawn(root.Context(), caracal.WithLabels("reader"), caracal.WithGrant(caracal.Grant.None()))
	require.NoError(t, err)
	d, err := c.Delegate(giver.Context(), peer.ID(), caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{MaxHops: 2}, time.Minute))
	require.NoError(t, err)
	once, err := c.AcceptDelegation(peer.Context(), d.ID)
	require.NoError(t, err)
	twice, err := c.AcceptDelegation(once, d.ID)
	require.NoError(t, err)
	a, b := mustAgent(t, once), mustAgent(t, twice)
	assert.Equal(t, a.Hop(), b.Hop())
	assert.Equal(t, a.ParentDelegationID(), b.ParentDelegationID())
	assert.Equal(t, d.ID, b.DelegationID())
}

// The hop count of a context is not the depth of the edge it presents: a
// Grant.None child keeps its parent's hop, and accepting a root edge adds
// one to it. Under such an edge, whose depth is not known here, a chain
// the Coordinator accepts and the STS mints under is not refused locally.
func TestNarrowUnderAcceptedEdgeIsNotJudgedByHop(t *testing.T) {
	_, c := newStack(t)
	root, narrowed := narrowReader(t, c, caracal.Constraints{}, "reader")
	none, err := c.Spawn(narrowed.Context(), caracal.WithLabels("reader"), caracal.WithGrant(caracal.Grant.None()))
	require.NoError(t, err)
	read := []string{"tickets:read"}
	d, err := c.Delegate(root.Context(), none.ID(), caracal.Grant.Narrow(read, "", caracal.Constraints{MaxHops: 5}, 5*time.Minute))
	require.NoError(t, err)
	ctx, err := c.AcceptDelegation(none.Context(), d.ID)
	require.NoError(t, err)
	require.Equal(t, 2, mustAgent(t, ctx).Hop(), "hop 2 for an edge one deep")

	mid, err := c.Spawn(ctx, caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow(read, "", caracal.Constraints{MaxHops: 4}, 4*time.Minute)))
	require.NoError(t, err)
	leaf, err := c.Spawn(mid.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow(read, "", caracal.Constraints{MaxHops: 3}, 3*time.Minute)))
	require.NoError(t, err, "an edge three deep with MaxHops 3, under one with 4")
	use, err := caracal.MintUse(leaf.Context(), c, "resource://tickets", "tickets:read")
	require.NoError(t, err)
	assert.Equal(t, "gateway", use)
}

// A default TTL fitted inside the parent's delegation is fitted when the
// delegation is created, not before the child's start: a start that takes
// a while (here 3 s, as a retried one may) does not push the child's edge
// past its parent's end.
func TestNarrowDefaultTTLFitsAfterASlowStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient()
		require.NoError(t, err)
		defer c.Close(context.Background())
		root, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
		require.NoError(t, err)
		parent, err := c.Spawn(root.Context(), caracal.WithLabels("reader"),
			caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{MaxHops: 3}, time.Minute)))
		require.NoError(t, err)

		st.Inject(caracaltest.RouteStart, caracaltest.Fault{Delay: 3 * time.Second, Times: 1})
		child, err := c.Spawn(parent.Context(), caracal.WithLabels("reader"),
			caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{MaxHops: 2}, 0)))
		require.NoError(t, err, "the default TTL (an hour) is fitted inside the parent's minute")
		edge, ok := st.EdgeInfo(child.Agent().DelegationID())
		require.True(t, ok)
		parentEdge, _ := st.EdgeInfo(parent.Agent().DelegationID())
		assert.False(t, edge.ExpiresAt.After(parentEdge.ExpiresAt))
		require.NoError(t, child.Close(context.Background()))
	})
}

// An inheriting child's edge sits one edge deeper than its parent's: a
// narrowed grandchild under it is three edges deep, and a grant that leaves
// it too few hops to mint is refused before any call.
func TestNarrowUnderInheritingChildCountsTheMirroredEdge(t *testing.T) {
	st, c := newStack(t)
	_, child := narrowReader(t, c, caracal.Constraints{MaxHops: 4}, "reader")
	heir, err := c.Spawn(child.Context(), caracal.WithLabels("reader"))
	require.NoError(t, err)
	require.NotEmpty(t, heir.Agent().DelegationID())
	starts := len(startsOf(st))

	narrow := func(hops int) (*caracal.Session, error) {
		return c.Spawn(heir.Context(), caracal.WithLabels("reader"),
			caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{MaxHops: hops}, time.Minute)))
	}
	_, err = narrow(2)
	require.ErrorIs(t, err, caracal.ErrInvalidGrant)
	assert.ErrorContains(t, err, "an edge 3 deep")
	assert.Len(t, startsOf(st), starts, "refused before any call")

	gc, err := narrow(3)
	require.NoError(t, err)
	_, err = caracal.MintUse(gc.Context(), c, "resource://tickets", "tickets:read")
	assert.NoError(t, err, "an edge 3 deep mints with MaxHops 3")
}

// A narrowing given its parent's own delegation TTL ends after the parent,
// whose edge began earlier, and one given a longer TTL exceeds the parent's:
// each is refused before any call, and the error says what fits. A spawn's
// TTL of 0 is fitted inside the parent; a Delegate needs a TTL, so it is
// told only to pass a shorter one.
func TestNarrowTTLBeyondTheParentsSaysWhatFits(t *testing.T) {
	st, c := newStack(t)
	_, parent := narrowReader(t, c, caracal.Constraints{MaxHops: 3}, "reader")
	peer, err := c.Spawn(t.Context(), caracal.WithLabels("reader"))
	require.NoError(t, err)
	for _, tc := range []struct {
		ttl     time.Duration
		refusal string
	}{
		{5 * time.Minute, "runs past the parent's delegation expiry"},
		{time.Hour, "is longer than the parent's delegation TTL"},
	} {
		sent := st.Count(caracaltest.RouteStart)
		grant := caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{MaxHops: 2}, tc.ttl)

		_, err := c.Spawn(parent.Context(), caracal.WithLabels("reader"), caracal.WithGrant(grant))
		require.ErrorIs(t, err, caracal.ErrInvalidGrant, tc.ttl)
		assert.ErrorContains(t, err, tc.refusal)
		assert.ErrorContains(t, err, "a TTL of 0 fits the delegation inside the parent's")
		assert.ErrorContains(t, err, "or pass a TTL shorter than")
		assert.Equal(t, sent, st.Count(caracaltest.RouteStart), "%v: refused before any call", tc.ttl)

		_, err = c.Delegate(parent.Context(), peer.ID(), grant)
		require.ErrorIs(t, err, caracal.ErrInvalidGrant, tc.ttl)
		assert.ErrorContains(t, err, "pass a TTL shorter than")
		assert.NotContains(t, err.Error(), "a TTL of 0")
	}

	child, err := c.Spawn(parent.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{MaxHops: 2}, 0)))
	require.NoError(t, err, "a TTL of 0 fits")
	require.NoError(t, child.Close(t.Context()))
}
