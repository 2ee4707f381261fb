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

// holdFirstLease holds the answer to the first lease acquire until release
// is closed.
type holdFirstLease struct {
	base    http.RoundTripper
	once    sync.Once
	held    chan struct{}
	release chan struct{}
}

func (h *holdFirstLease) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := h.base.RoundTrip(req)
	if strings.HasSuffix(req.URL.Path, "/lease") {
		first := false
		h.once.Do(func() { first = true })
		if first {
			close(h.held)
			<-h.release
		}
	}
	return resp, err
}

// attachInReverse makes two AttachService calls of one client on one
// service whose answers come back in the other order: the first attach
// acquires the lease and its answer waits while the second attach completes
// and between runs, then the first one's answer is let through.
func attachInReverse(t *testing.T, between func(newer *caracal.Service)) (c *caracal.Client, older, newer *caracal.Service) {
	st := caracaltest.Start(t, caracaltest.InMemory())
	rt := &holdFirstLease{base: st.Transport(), held: make(chan struct{}), release: make(chan struct{})}
	c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: rt}))
	require.NoError(t, err)
	ctx := t.Context()
	svc, err := c.SpawnService(ctx)
	require.NoError(t, err)

	attached := make(chan error, 1)
	go func() {
		var err error
		older, err = c.AttachService(ctx, svc.ID())
		attached <- err
	}()
	<-rt.held // the first attach acquired the lease; its answer waits
	newer, err = c.AttachService(ctx, svc.ID())
	require.NoError(t, err)
	between(newer)
	close(rt.release)
	require.NoError(t, <-attached)
	require.Less(t, older.Generation(), newer.Generation())

	synctest.Wait()
	select {
	case <-older.Done():
	default:
		t.Fatal("the handle of the older generation is still live")
	}
	return c, older, newer
}

// Two AttachService calls of one client on one service, whose answers
// come back in the other order: the handle of the older generation ends as
// fenced, as it does when the attaches do not overlap, instead of looking
// live beside the newer one until its next heartbeat.
func TestConcurrentAttachesFenceTheOlderHandle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, older, newer := attachInReverse(t, func(*caracal.Service) {})
		assert.ErrorIs(t, older.Err(), caracal.ErrLeaseFenced)
		require.NoError(t, newer.Err())
		require.NoError(t, c.Close(context.Background()))
	})
}

// The same, with the newer handle closed (its session retired) before the
// older attach's answer arrives: the older handle still ends as fenced,
// instead of looking live on a session that is retired.
func TestLateAttachFencedByANewerHandleClosedSince(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, older, _ := attachInReverse(t, func(newer *caracal.Service) {
			require.NoError(t, newer.Close(t.Context()))
		})
		assert.ErrorIs(t, older.Err(), caracal.ErrLeaseFenced)
		require.NoError(t, c.Close(context.Background()))
		assert.Zero(t, caracal.IndexedServices(c))
	})
}

// replayLease holds the first lease answer like holdFirstLease, keeps the
// second one, and answers every later acquire with it unsent.
type replayLease struct {
	holdFirstLease
	mu     sync.Mutex
	n      int
	second []byte
}

func (r *replayLease) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(req.URL.Path, "/lease") {
		return r.base.RoundTrip(req)
	}
	r.mu.Lock()
	r.n++
	n, kept := r.n, r.second
	r.mu.Unlock()
	if n > 2 {
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(bytes.NewReader(kept)), ContentLength: int64(len(kept)), Request: req}, nil
	}
	resp, err := r.holdFirstLease.RoundTrip(req)
	if n == 2 && err == nil {
		body, rerr := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		r.mu.Lock()
		r.second = body
		r.mu.Unlock()
		resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		return resp, rerr
	}
	return resp, err
}

// While an acquire is in flight, an attach answered with the generation
// another acquire returned meanwhile (its handle closed since) is refused
// like one answered with a generation a handle holds.
func TestAttachAnsweredWithAGenerationAcquiredMeanwhileIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		rt := &replayLease{holdFirstLease: holdFirstLease{base: st.Transport(), held: make(chan struct{}), release: make(chan struct{})}}
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: rt}))
		require.NoError(t, err)
		ctx := t.Context()
		svc, err := c.SpawnService(ctx)
		require.NoError(t, err)

		attached := make(chan error, 1)
		go func() {
			_, err := c.AttachService(ctx, svc.ID())
			attached <- err
		}()
		<-rt.held
		newer, err := c.AttachService(ctx, svc.ID())
		require.NoError(t, err)
		require.NoError(t, newer.Close(ctx))

		again, err := c.AttachService(ctx, svc.ID())
		require.ErrorIs(t, err, caracal.ErrUnavailable, "attached %v", again)
		close(rt.release)
		<-attached
		require.NoError(t, c.Close(context.Background()))
	})
}
