package caracal_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/caracaltest"
)

// A start refused for its depth can never pass by sending it again: it is
// sent once, and the error names the limit at once. (A limit that other
// sessions ending can lift is retried: TestStartNotRetried.)
func TestSpawnTooDeepIsNotRetried(t *testing.T) {
	st, c := newStack(t, caracaltest.WithLimits(caracaltest.Limits{MaxDepth: 1}))
	root, err := c.Spawn(t.Context())
	require.NoError(t, err)
	child, err := c.Spawn(root.Context())
	require.NoError(t, err)
	starts := st.Count(caracaltest.RouteStart)

	_, err = c.Spawn(child.Context())
	require.Error(t, err)
	assert.ErrorContains(t, err, "session_depth_limit_exceeded")
	assert.Equal(t, starts+1, st.Count(caracaltest.RouteStart), "sent once")

}
