package caracal_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// watchedContext is a context that never ends and counts the functions
// registered to run when it does (context.AfterFunc, and the contexts
// derived from it) that are still registered.
type watchedContext struct {
	context.Context
	done chan struct{}

	mu      sync.Mutex
	next    int
	pending map[int]func()
}

func newWatchedContext() *watchedContext {
	return &watchedContext{Context: context.Background(), done: make(chan struct{}), pending: map[int]func(){}}
}

func (w *watchedContext) Done() <-chan struct{} { return w.done }

func (w *watchedContext) AfterFunc(f func()) (stop func() bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	id := w.next
	w.next++
	w.pending[id] = f
	return func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		_, ok := w.pending[id]
		delete(w.pending, id)
		return ok
	}
}

func (w *watchedContext) registered() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

// A service started or attached with a long-lived context (the one from
// signal.NotifyContext, say) lets go of it when closed: a process that
// starts and closes services under one context does not keep every closed
// handle reachable from it.
func TestServiceCloseReleasesItsStartContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, c := serviceStack(t)
		ctx := newWatchedContext()
		for range 3 {
			svc, err := c.SpawnService(ctx, caracal.HeartbeatAuto())
			require.NoError(t, err)
			taken, err := c.AttachService(ctx, svc.ID(), caracal.HeartbeatAuto())
			require.NoError(t, err)
			require.NoError(t, taken.Close(t.Context()))
			require.NoError(t, svc.Close(t.Context()))
		}
		synctest.Wait()
		assert.Zero(t, ctx.registered())
	})
}
