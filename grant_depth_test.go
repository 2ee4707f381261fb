package caracal_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
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
