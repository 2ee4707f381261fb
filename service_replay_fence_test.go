package caracal_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// cancelAfterLease cancels the caller once a lease acquire has been answered
// (the answer is read whole first, so that it still arrives).
type cancelAfterLease struct {
	base http.RoundTripper

	mu     sync.Mutex
	cancel context.CancelFunc
}

func (c *cancelAfterLease) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil || c.cancel == nil || req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, "/lease") {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	c.cancel()
	return resp, nil
}

// A replayed start takes the lease over: the handle the original start
// returned in this client ends at once as fenced, also when the replaying
// call gives up before its own handle is handed out.
func TestServiceReplayFencesTheFirstHandleWhenTheReplayIsGivenUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		rt := &cancelAfterLease{base: st.Transport()}
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: rt}))
		require.NoError(t, err)
		first, err := c.SpawnService(t.Context(), caracal.WithIdempotencyKey("svc-replay"))
		require.NoError(t, err)

		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		rt.mu.Lock()
		rt.cancel = cancel
		rt.mu.Unlock()
		_, err = c.SpawnService(ctx, caracal.WithIdempotencyKey("svc-replay"))
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, 1, st.Count(caracaltest.RouteLease))

		select {
		case <-first.Done():
		default:
			t.Fatal("the first handle is still live after its lease was taken over")
		}
		assert.ErrorIs(t, first.Err(), caracal.ErrLeaseFenced)
		assert.Zero(t, st.Count(caracaltest.RouteHeartbeat))
		require.NoError(t, first.Close(t.Context()))
		require.NoError(t, c.Close(t.Context()))
	})
}
