package caracal_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/caracaltest"
)

// steppedCtx is a start context whose end reaches a context derived from
// it first (derived), then, after between ran, the callbacks registered
// with context.AfterFunc (the service's watch on it): as the end of a
// parent's context reaches a child's Context at once and its watch a
// moment later.
type steppedCtx struct {
	context.Context // a cancelable context: Err and Cause come from it
	cancel          context.CancelCauseFunc
	done            chan struct{}
	mu              sync.Mutex
	funcs           []*func()
}

func (c *steppedCtx) Done() <-chan struct{} { return c.done }

func (c *steppedCtx) AfterFunc(f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := &f
	c.funcs = append(c.funcs, p)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, x := range c.funcs {
			if x == p {
				c.funcs = append(c.funcs[:i], c.funcs[i+1:]...)
				return true
			}
		}
		return false
	}
}

func (c *steppedCtx) end(cause error, derived <-chan struct{}, between func()) {
	c.cancel(cause)
	close(c.done)
	<-derived
	between()
	c.mu.Lock()
	funcs := c.funcs
	c.funcs = nil
	c.mu.Unlock()
	for _, f := range funcs {
		(*f)()
	}
}

// A Close that ends a service after its start context ended, but before
// the service's watch on that context ran, leaves Err the same as the
// cause of the service's Context (which the start context's end already
// set), and still retires the session.
func TestServiceCloseAfterStartContextEndedKeepsOneCause(t *testing.T) {
	st := caracaltest.Start(t)
	c, err := st.NewClient()
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	inner, cancel := context.WithCancelCause(context.Background())
	sctx := &steppedCtx{Context: inner, cancel: cancel, done: make(chan struct{})}
	svc, err := c.SpawnService(sctx)
	require.NoError(t, err)

	stop := errors.New("shutting down")
	var closeErr error
	sctx.end(stop, svc.Context().Done(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		closeErr = svc.Close(ctx)
	})
	require.NoError(t, closeErr)
	assert.Same(t, context.Cause(svc.Context()), svc.Err())
	info, ok := st.SessionInfo(svc.ID())
	require.True(t, ok)
	assert.NotEqual(t, "active", info.Status)
}
