package caracal_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// afterAnswer calls hook once the answer to a heartbeat with status has
// been read and closed, before the SDK acts on it.
type afterAnswer struct {
	base   http.RoundTripper
	status int
	hook   func()
}

func (a afterAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := a.base.RoundTrip(r)
	if err == nil && resp.StatusCode == a.status && strings.HasSuffix(r.URL.Path, "/heartbeat") {
		resp.Body = hookedBody{resp.Body, a.hook}
	}
	return resp, err
}

type hookedBody struct {
	io.ReadCloser
	hook func()
}

func (b hookedBody) Close() error {
	err := b.ReadCloser.Close()
	b.hook()
	return err
}

// A final answer to a Heartbeat ends the handle even when the caller's
// context ends after the answer came: the lease is gone whatever the caller
// does next, and Heartbeat reports the loss.
func TestServiceHeartbeatFinalAnswerCountsAfterCallerGaveUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{
			Transport: afterAnswer{base: st.Transport(), status: http.StatusConflict, hook: cancel},
		}))
		require.NoError(t, err)
		defer func() { _ = c.Close(context.Background()) }()
		other, err := st.NewClient()
		require.NoError(t, err)
		defer func() { _ = other.Close(context.Background()) }()

		lost := make(chan error, 2)
		svc, err := c.SpawnService(t.Context(), caracal.OnLeaseLost(func(err error) { lost <- err }))
		require.NoError(t, err)
		taken, err := other.AttachService(t.Context(), svc.ID())
		require.NoError(t, err)

		_, err = svc.Heartbeat(ctx)
		assert.ErrorIs(t, err, caracal.ErrLeaseFenced)
		assert.ErrorIs(t, svc.Err(), caracal.ErrLeaseFenced, "the handle ended on the fenced answer")
		synctest.Wait()
		require.Len(t, lost, 1)
		assert.ErrorIs(t, <-lost, caracal.ErrLeaseFenced)
		require.NoError(t, svc.Close(t.Context()))
		require.NoError(t, taken.Close(t.Context()))
		assert.Equal(t, 1, st.Count(caracaltest.RouteRetire), "only the holder retires")
	})
}
