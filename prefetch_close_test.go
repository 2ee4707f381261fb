package caracal

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/stsclient"
)

// A Close that stops waiting for a worker stuck in a mint says so, with the
// cause its context was cancelled with.
func TestPrefetchCloseGivenUpKeepsTheCause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeMint{}
		release := make(chan struct{})
		var n int
		p := newPrefetcherFunc(func(ctx context.Context, r stsclient.MintRequest) (stsclient.Token, error) {
			if n++; n > 1 {
				<-release // a mint that does not heed its context
			}
			return f.Mint(ctx, r)
		}, 1)
		_, err := p.take(context.Background(), agentWithDone(make(chan struct{})), readReq)
		require.NoError(t, err)
		synctest.Wait() // the worker is in its mint

		cause := errors.New("shutting down")
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(cause)
		err = p.Close(ctx)
		assert.ErrorIs(t, err, cause)
		assert.Contains(t, err.Error(), "prefetch")

		close(release)
		require.NoError(t, p.Close(context.Background()))
	})
}
