package caracaltest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The heartbeat echoes active_invocations as sent (PROTOCOL §4.5): the
// schema bounds it below only, so a count beyond 32 bits comes back whole.
func TestHeartbeatEchoesLargeActiveInvocations(t *testing.T) {
	e := newCoordEnv(t)
	id := e.service("")
	got := e.do(req{method: "POST", path: heartbeatPath(id),
		body: `{"lease_generation":1,"active_invocations":5000000000}`})
	require.Equal(t, 200, got.status, got.raw)
	assert.Contains(t, got.raw, `"active_invocations":5000000000`)
}
