package caracal_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A narrowing under a parent narrowed by this process is checked against
// the parent's delegation expiry as the Coordinator checks it, on its own
// clock: whichever way the client's clock is off, a grandchild TTL that fits
// inside the parent's delegation is neither refused locally nor, when it is
// defaulted, shortened too little for the Coordinator.
func TestNarrowUnderNarrowIgnoresClockSkew(t *testing.T) {
	for _, off := range []time.Duration{2 * time.Minute, -2 * time.Minute} {
		for _, ttl := range []time.Duration{0, 9 * time.Minute} {
			t.Run(off.String()+"/ttl="+ttl.String(), func(t *testing.T) {
				clk := &skewClock{}
				clk.off.Store(int64(off))
				_, c := newStack(t, caracaltest.WithClock(clk))
				root, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
				require.NoError(t, err)
				parent, err := c.Spawn(root.Context(), caracal.WithLabels("reader"),
					caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{MaxHops: 3}, 10*time.Minute)))
				require.NoError(t, err)
				child, err := c.Spawn(parent.Context(), caracal.WithLabels("reader"),
					caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{MaxHops: 2}, ttl)))
				require.NoError(t, err)
				require.NoError(t, child.Close(t.Context()))
			})
		}
	}
}

// Constraints.ExpiresAt is sent in whole milliseconds, and the Coordinator
// compares what it receives with the parent's expiry: a child expiry under
// a millisecond past the parent's is sent as the parent's and accepted.
func TestNarrowExpiryComparedAsSent(t *testing.T) {
	_, c := newStack(t)
	root, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	at := time.Now().Add(10 * time.Minute).Truncate(time.Millisecond)
	parent, err := c.Spawn(root.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{MaxHops: 3, ExpiresAt: at}, 0)))
	require.NoError(t, err)
	child, err := c.Spawn(parent.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{MaxHops: 2, ExpiresAt: at.Add(500 * time.Microsecond)}, 0)))
	require.NoError(t, err)
	require.NoError(t, child.Close(t.Context()))
}
