package caracaltest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The in-memory transport fails a cancelled request with the context's
// cause, as net/http's transport does, so that code which reports why its
// request was cancelled behaves the same in memory and over loopback.
func TestMemTransportCancelReturnsCause(t *testing.T) {
	errWhy := errors.New("the caller gave up")
	started := make(chan struct{}, 1)
	tr := memTestTransport(t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/body" {
			_, _ = io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
		}
		started <- struct{}{}
		<-r.Context().Done()
	}))

	t.Run("before the request", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(t.Context())
		cancel(errWhy)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc.test/", nil)
		_, err := tr.RoundTrip(req)
		assert.ErrorIs(t, err, errWhy)
	})
	t.Run("before the headers", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(t.Context())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc.test/", nil)
		errc := make(chan error, 1)
		go func() {
			_, err := tr.RoundTrip(req)
			errc <- err
		}()
		<-started
		cancel(errWhy)
		assert.ErrorIs(t, <-errc, errWhy)
	})
	t.Run("during the body", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(t.Context())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc.test/body", nil)
		resp, err := tr.RoundTrip(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		<-started
		buf := make([]byte, len("partial"))
		_, err = io.ReadFull(resp.Body, buf)
		require.NoError(t, err)
		cancel(errWhy)
		_, err = resp.Body.Read(buf)
		assert.ErrorIs(t, err, errWhy)
	})
}
