package caracal

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A transport keeps at most prefetchMaxPools pools; past the bound a
// request mints on its path and starts no pool (and no worker).
func TestPrefetchPoolsAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeMint{}
		p := newPrefetcherFunc(f.Mint, 1)
		defer func() { require.NoError(t, p.Close(context.Background())) }()
		a := agentWithDone(make(chan struct{}))
		for i := range prefetchMaxPools + 10 {
			r := readReq
			r.AgentSessionID = fmt.Sprintf("sess-%d", i)
			_, err := p.take(context.Background(), a, r)
			require.NoError(t, err)
		}
		synctest.Wait()
		p.mu.Lock()
		n, workers := len(p.pools), p.workers
		p.mu.Unlock()
		assert.Equal(t, prefetchMaxPools, n)
		assert.Equal(t, prefetchMaxPools, workers)
	})
}
