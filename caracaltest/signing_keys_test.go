package caracaltest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRetiredKeyStopsVerifying: the Gateway's signature check uses the same
// set as the JWKS, so a token of the previous key verifies until the key's
// grace ends, whether or not a sweep ran in between.
func TestRetiredKeyStopsVerifying(t *testing.T) {
	env := newSTSEnv(t)
	tok := env.token(t, lifecycleForm()).AccessToken
	k, err := newSigningKey()
	require.NoError(t, err)
	env.w.rotateKey(k)

	check := func() error {
		env.w.mu.Lock()
		defer env.w.mu.Unlock()
		_, err := env.w.verifySignature(tok)
		return err
	}
	require.NoError(t, check())
	env.clock.Advance(keyGrace - time.Nanosecond)
	require.NoError(t, check())
	env.clock.Advance(time.Nanosecond)
	assert.ErrorContains(t, check(), "unknown kid")
}
