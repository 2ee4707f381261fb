package caracal_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// panicOnce is a RoundTripper whose first request panics, as a buggy
// transport or logging wrapper of the caller's might.
type panicOnce struct {
	base   http.RoundTripper
	panics atomic.Bool
}

func (p *panicOnce) RoundTrip(r *http.Request) (*http.Response, error) {
	if p.panics.CompareAndSwap(false, true) {
		panic("transport bug")
	}
	return p.base.RoundTrip(r)
}

// A panic during the lifecycle token exchange propagates to the caller that
// ran it, and leaves the client usable: the next call exchanges again
// instead of waiting forever for the exchange that panicked.
func TestLifecycleExchangePanicDoesNotWedgeClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		hc := &http.Client{Transport: &panicOnce{base: st.Transport()}}
		c, err := caracal.NewFromConfig(st.Config(), caracal.WithHTTPClient(hc))
		require.NoError(t, err)
		defer c.Close(context.Background())

		assert.PanicsWithValue(t, "transport bug", func() {
			_, _ = c.Headers(t.Context(), caracal.AsApplication())
		})

		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		h, err := c.Headers(ctx, caracal.AsApplication())
		require.NoError(t, err, "the client stayed wedged on the exchange that panicked")
		assert.NotEmpty(t, h.Get("Authorization"))
	})
}

// A Session or Service that Spawn or SpawnService did not return (nil, as
// left by a failed Spawn, or a zero value) is refused with an error that
// says so, instead of a nil dereference; for a zero Service the dereference
// happened on a goroutine of the SDK, where no recover could catch it.
func TestHandleNotFromSpawnIsRefused(t *testing.T) {
	ctx := t.Context()
	var nilSession *caracal.Session
	var zeroSession caracal.Session
	var nilService *caracal.Service
	var zeroService caracal.Service
	for name, f := range map[string]func() error{
		"nil Session Close":      func() error { return nilSession.Close(ctx) },
		"zero Session Close":     func() error { return zeroSession.Close(ctx) },
		"nil Service Close":      func() error { return nilService.Close(ctx) },
		"zero Service Close":     func() error { return zeroService.Close(ctx) },
		"nil Service Heartbeat":  func() error { _, err := nilService.Heartbeat(ctx); return err },
		"zero Service Heartbeat": func() error { _, err := zeroService.Heartbeat(ctx); return err },
	} {
		t.Run(name, func(t *testing.T) {
			var err error
			require.NotPanics(t, func() { err = f() })
			require.ErrorIs(t, err, caracal.ErrInvalidRequest)
			assert.Contains(t, err.Error(), "returned")
		})
	}
}
