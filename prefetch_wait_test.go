package caracal

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/stsclient"
)

// endsOnWait is a request context that ends when a request starts waiting
// on it, after running onWait.
type endsOnWait struct {
	context.Context
	onWait func()
	once   sync.Once
	ended  atomic.Bool
	done   chan struct{}
}

func (c *endsOnWait) Done() <-chan struct{} {
	c.once.Do(func() {
		c.onWait()
		c.ended.Store(true)
		close(c.done)
	})
	return c.done
}

func (c *endsOnWait) Err() error {
	if c.ended.Load() {
		return context.Canceled
	}
	return nil
}

// A request whose context ends while it waits for the refill in flight is
// not sent, so it must not spend the mandate the refill pools meanwhile:
// the worker would replace it with another mint.
func TestPrefetchContextEndedDuringWaitSpendsNoMandate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeMint{}
		release := make(chan struct{})
		var n atomic.Int32
		p := newPrefetcherFunc(func(ctx context.Context, r stsclient.MintRequest) (stsclient.Token, error) {
			if n.Add(1) == 2 {
				<-release // the refill
			}
			return f.Mint(ctx, r)
		}, 1)
		defer func() { require.NoError(t, p.Close(context.Background())) }()
		a := agentWithDone(nil)
		_, err := p.take(context.Background(), a, readReq)
		require.NoError(t, err)
		synctest.Wait() // the worker's refill is in flight

		ctx := &endsOnWait{Context: context.Background(), done: make(chan struct{}), onWait: func() {
			close(release)
			synctest.Wait() // the refill is pooled, and its waiters released
		}}
		_, err = p.take(ctx, a, readReq)
		require.ErrorIs(t, err, context.Canceled)
		pooled, ok := p.pooled(readKey())
		require.True(t, ok)
		assert.Equal(t, 1, pooled, "the refill's mandate is still pooled")
		assert.Equal(t, 2, f.count(), "no mint to replace it")
	})
}
