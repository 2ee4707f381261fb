package caracaltest

import (
	"context"
	"io"
	"net/http"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A handler still running after the response was handed over sees its
// context end when the client's does, before the client closes the body,
// as a server's does when its connection closes.
func TestMemTransportClientCancelEndsHandlerContextDuringBody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ended := make(chan struct{})
		tr := memTestTransport(t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			close(ended)
		}))
		ctx, cancel := context.WithCancel(t.Context())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc.test/", nil)
		resp, err := tr.RoundTrip(req)
		require.NoError(t, err)
		cancel()
		synctest.Wait()
		select {
		case <-ended:
		default:
			t.Error("the handler's context is still live after the client's ended")
		}
		require.NoError(t, resp.Body.Close())
	})
}

// Closing the body ends the context of a handler that waits on it without
// writing, and returns once the handler has.
func TestMemTransportBodyCloseEndsHandlerContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		returned := false
		tr := memTestTransport(t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			returned = true
		}))
		resp, err := (&http.Client{Transport: tr}).Get("http://svc.test/")
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.True(t, returned, "Close returns once the handler has")
	})
}

// The handler sees the path as the client escaped it, as a server reads it
// off the request line.
func TestMemTransportKeepsTheEscapedPath(t *testing.T) {
	var got string
	tr := memTestTransport(t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.EscapedPath()
	}))
	resp, err := (&http.Client{Transport: tr}).Get("http://svc.test/tickets/a%2Fb/%2e")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, "/tickets/a%2Fb/%2e", got)
}

// A HEAD response's ContentLength is what its Content-Length header
// announces, or -1 without one, as net/http's client reports it.
func TestMemTransportHeadContentLength(t *testing.T) {
	tr := memTestTransport(t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/announced" {
			w.Header().Set("Content-Length", "10")
		}
	}))
	for path, want := range map[string]int64{"/announced": 10, "/bare": -1} {
		resp, err := (&http.Client{Transport: tr}).Head("http://svc.test" + path)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		require.NoError(t, resp.Body.Close())
		assert.Empty(t, b)
		assert.Equal(t, want, resp.ContentLength, path)
	}
}
