package caracal

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/stsclient"
)

// A pool whose edge nears its end stops at the first background mint too
// short-lived to pool, so that no further mint is spent on mandates that
// would be discarded before use.
func TestPrefetchStopsWhenARefillIsTooShortLived(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeMint{}
		edgeEnd := time.Now().Add(100 * time.Second)
		mint := func(ctx context.Context, r stsclient.MintRequest) (stsclient.Token, error) {
			tok, err := f.Mint(ctx, r)
			tok.ExpiresAt = edgeEnd // the STS never mints past the edge's end
			return tok, err
		}
		p := newPrefetcherFunc(mint, 1)
		defer func() { require.NoError(t, p.Close(context.Background())) }()
		a := agentWithDone(nil)

		_, err := p.take(context.Background(), a, readReq) // 100 s left: poolable
		require.NoError(t, err)
		synctest.Wait()
		n, ok := p.pooled(readKey())
		require.True(t, ok)
		require.Equal(t, 1, n)

		time.Sleep(20 * time.Second)
		tok, err := p.take(context.Background(), a, readReq)
		require.NoError(t, err)
		assert.Equal(t, "mandate-2", tok.Value, "80 s left: handed out")
		synctest.Wait() // the refill has 80 s of life: too little to pool
		_, ok = p.pooled(readKey())
		assert.False(t, ok, "the pool is dropped")
		assert.Equal(t, 3, f.count())
	})
}
