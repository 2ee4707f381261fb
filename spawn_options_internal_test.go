package caracal

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The documented limits of the spawn options are inclusive: a value at the
// limit is accepted, and the next one refused.
func TestSpawnOptionLimitsAreInclusive(t *testing.T) {
	labels := make([]string, maxLabels)
	for i := range labels {
		labels[i] = "l"
	}
	cfg := newSpawnConfig([]SpawnOption{WithLabels(labels...)})
	assert.NoError(t, cfg.err, "32 labels")
	assert.Len(t, cfg.labels, maxLabels)

	cfg = newSpawnConfig([]SpawnOption{WithTTL(24 * time.Hour)})
	assert.NoError(t, cfg.err, "a TTL of 24 h")
	assert.Equal(t, 24*time.Hour, cfg.ttl)
	assert.ErrorIs(t, newSpawnConfig([]SpawnOption{WithTTL(24*time.Hour + time.Second)}).err, ErrInvalidRequest)

	key := strings.Repeat("k", maxIdemKeyLen)
	cfg = newSpawnConfig([]SpawnOption{WithIdempotencyKey(key)})
	assert.NoError(t, cfg.err, "a key of 255 bytes")
	assert.Equal(t, key, cfg.idemKey)
	cfg = newSpawnConfig([]SpawnOption{WithIdempotencyKey("~ !k")})
	assert.NoError(t, cfg.err, "printable ASCII from space to tilde")
	assert.ErrorIs(t, newSpawnConfig([]SpawnOption{WithIdempotencyKey("k\x7f")}).err, ErrInvalidRequest, "DEL is a control character")

	cfg = newSpawnConfig([]SpawnOption{HeartbeatInterval(time.Second)})
	assert.NoError(t, cfg.service.err, "an interval of 1s")
	assert.ErrorIs(t, newSpawnConfig([]SpawnOption{HeartbeatInterval(time.Second - 1)}).service.err, ErrInvalidRequest)
}

// The last of HeartbeatInterval and HeartbeatAuto wins, an invalid
// interval included: a later valid choice replaces it.
func TestHeartbeatOptionLastWins(t *testing.T) {
	cfg := newSpawnConfig([]SpawnOption{HeartbeatInterval(0), HeartbeatAuto()})
	assert.NoError(t, cfg.service.err)
	assert.True(t, cfg.service.background)
	assert.Zero(t, cfg.service.interval)

	cfg = newSpawnConfig([]SpawnOption{HeartbeatInterval(0), HeartbeatInterval(2 * time.Second)})
	assert.NoError(t, cfg.service.err)
	assert.Equal(t, 2*time.Second, cfg.service.interval)

	cfg = newSpawnConfig([]SpawnOption{HeartbeatAuto(), HeartbeatInterval(0)})
	assert.ErrorIs(t, cfg.service.err, ErrInvalidRequest)
}
