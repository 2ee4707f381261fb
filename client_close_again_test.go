package caracal_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/caracaltest"
)

// A Close whose ctx ends before the retires do says they go on in the
// background; a later Close waits for them, within its own ctx, and
// returns how they ended, as a later Session.Close does, instead of the
// first Close's timeout.
func TestClientCloseAgainWaitsForTheBackgroundRetires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient()
		require.NoError(t, err)
		s, err := c.Spawn(t.Context())
		require.NoError(t, err)
		st.Inject(caracaltest.RouteRetire, caracaltest.Fault{Delay: 3 * time.Second, Times: 1})

		short, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err = c.Close(short)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorContains(t, err, "in the background")

		again, cancel2 := context.WithTimeout(context.Background(), time.Second)
		defer cancel2()
		assert.ErrorIs(t, c.Close(again), context.DeadlineExceeded, "the retire has not ended yet")

		assert.NoError(t, c.Close(context.Background()), "the retire succeeded")
		info, _ := st.SessionInfo(s.ID())
		assert.Equal(t, "terminated", info.Status)
		assert.NoError(t, c.Close(context.Background()), "and stays the outcome")
	})
}
