package caracal_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// clientCalls are the Client methods that take a context, each called with
// ctx on c.
func clientCalls(c *caracal.Client, ctx context.Context) map[string]func() error {
	narrow := caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{}, time.Minute)
	return map[string]func() error{
		"Spawn":            func() error { _, err := c.Spawn(ctx); return err },
		"SpawnService":     func() error { _, err := c.SpawnService(ctx); return err },
		"AttachService":    func() error { _, err := c.AttachService(ctx, "s-1"); return err },
		"Resume":           func() error { _, err := c.Resume(ctx, "s-1"); return err },
		"Headers":          func() error { _, err := c.Headers(ctx, caracal.AsApplication()); return err },
		"Delegate":         func() error { _, err := c.Delegate(ctx, "s-1", narrow); return err },
		"AcceptDelegation": func() error { _, err := c.AcceptDelegation(ctx, "e-1"); return err },
		"RevokeDelegation": func() error { return c.RevokeDelegation(ctx, "e-1") },
		"WaitApproval":     func() error { return c.WaitApproval(ctx, "a-1") },
		"Close":            func() error { return c.Close(ctx) },
	}
}

// A nil context is refused with an error naming the method, before any
// call, instead of a nil dereference deep inside.
func TestNilContextIsRefused(t *testing.T) {
	st := caracaltest.Start(t)
	c, err := st.NewClient()
	require.NoError(t, err)
	defer c.Close(context.Background())
	s, err := c.Spawn(t.Context())
	require.NoError(t, err)
	st.ResetRecord()

	var nilCtx context.Context
	for name, call := range clientCalls(c, nilCtx) {
		t.Run(name, func(t *testing.T) {
			var err error
			require.NotPanics(t, func() { err = call() })
			require.ErrorIs(t, err, caracal.ErrInvalidRequest)
			assert.Contains(t, err.Error(), name)
			assert.Contains(t, err.Error(), "nil context")
		})
	}
	t.Run("Session.Close", func(t *testing.T) {
		var err error
		require.NotPanics(t, func() { err = s.Close(nilCtx) })
		require.ErrorIs(t, err, caracal.ErrInvalidRequest)
	})
	t.Run("FromContext", func(t *testing.T) {
		require.NotPanics(t, func() {
			a, ok := caracal.FromContext(nilCtx)
			assert.False(t, ok)
			assert.Nil(t, a)
		})
	})
	assert.Empty(t, st.Requests(), "a call with a nil context reached a service")

	// The client still works, and the session is still open.
	require.NoError(t, s.Close(t.Context()))
	_, err = c.Headers(t.Context(), caracal.AsApplication())
	require.NoError(t, err)
}

// A nil *Client (a New that failed) or a zero Client is refused with an
// error that says how to make one.
func TestClientNotFromNewIsRefused(t *testing.T) {
	var nilClient *caracal.Client
	for what, c := range map[string]*caracal.Client{"nil": nilClient, "zero": new(caracal.Client)} {
		for name, call := range clientCalls(c, t.Context()) {
			t.Run(what+" "+name, func(t *testing.T) {
				var err error
				require.NotPanics(t, func() { err = call() })
				require.ErrorIs(t, err, caracal.ErrInvalidRequest)
				assert.Contains(t, err.Error(), "caracal.New")
			})
		}
		t.Run(what+" Middleware", func(t *testing.T) {
			var err error
			require.NotPanics(t, func() { _, err = c.Middleware(caracal.TrustedPropagation()) })
			require.ErrorIs(t, err, caracal.ErrInvalidRequest)
		})
	}
}
