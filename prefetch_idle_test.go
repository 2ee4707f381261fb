package caracal

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A pool that is taken from more often than prefetchIdle is kept: idleness
// counts from the last take, not from the pool's start.
func TestPrefetchPoolInUseIsKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeMint{}
		p := newPrefetcherFunc(f.Mint, 1)
		defer func() { require.NoError(t, p.Close(context.Background())) }()
		a := agentWithDone(nil)
		_, err := p.take(context.Background(), a, readReq)
		require.NoError(t, err)
		synctest.Wait()
		require.Equal(t, 2, f.count(), "the inline mint and the first refill")

		for i := range 4 {
			time.Sleep(prefetchIdle * 2 / 5)
			tok, err := p.take(context.Background(), a, readReq)
			require.NoError(t, err)
			assert.Equal(t, fmt.Sprintf("mandate-%d", i+2), tok.Value, "take %d comes from the pool", i+1)
			synctest.Wait()
			_, ok := p.pooled(readKey())
			require.True(t, ok)
		}
		assert.Equal(t, 6, f.count(), "one refill per take, no pool restarted")
	})
}
