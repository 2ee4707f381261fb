package caracal_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A Close given a context already done has nothing to give up on when
// nothing runs: no start in flight, no prefetch worker, no session to
// retire. It returns nil, as every later Close does, instead of claiming
// that a start or a worker goes on in the background.
func TestClientCloseWithDoneContextAndNothingRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient()
		require.NoError(t, err)
		s, err := c.Spawn(t.Context())
		require.NoError(t, err)
		require.NoError(t, s.Close(t.Context()))
		_ = c.HTTPClient(caracal.WithScopes("tickets:read"), caracal.WithPrefetch(1))

		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		assert.NoError(t, c.Close(ctx))
		assert.NoError(t, c.Close(context.Background()))
	})
}
