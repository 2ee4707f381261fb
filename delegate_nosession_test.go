package caracal_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// Delegate and AcceptDelegation act for the agent bound to ctx: without one
// they fail with ErrNoSession before any call, and their advice is to pass
// that agent's context, not AsApplication, which neither of them takes (the
// application's own identity has no session to delegate from or to).
func TestDelegateWithoutAgentAdvice(t *testing.T) {
	st, c := newStack(t)
	peer, err := c.Spawn(t.Context(), caracal.WithLabels("reader"))
	require.NoError(t, err)
	st.ResetRecord()

	_, err = c.Delegate(t.Context(), peer.ID(),
		caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Minute))
	require.ErrorIs(t, err, caracal.ErrNoSession)
	assert.NotContains(t, err.Error(), "AsApplication")
	assert.Contains(t, err.Error(), "Delegate")

	_, err = c.AcceptDelegation(t.Context(), "01a22660-9913-78b8-bf69-1f58d2090df2")
	require.ErrorIs(t, err, caracal.ErrNoSession)
	assert.NotContains(t, err.Error(), "AsApplication")
	assert.Contains(t, err.Error(), "AcceptDelegation")

	assert.Zero(t, st.Count(caracaltest.RouteDelegate)+st.Count(caracaltest.RouteInbound))
}
