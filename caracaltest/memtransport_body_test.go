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

type readResult struct {
	body string
	err  error
}

// A client already waiting on the body is woken by the handler's next
// write, and then by its end.
func TestMemTransportWaitingReaderWakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		step := make(chan struct{})
		tr := memTestTransport(t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush()
			select {
			case <-step:
			case <-r.Context().Done():
				return
			}
			_, _ = io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			select {
			case <-step:
			case <-r.Context().Done():
			}
		}))
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc.test/", nil)
		require.NoError(t, err)
		resp, err := tr.RoundTrip(req)
		require.NoError(t, err)
		read := func() <-chan readResult {
			c := make(chan readResult, 1)
			go func() {
				b := make([]byte, 8)
				n, err := resp.Body.Read(b)
				c <- readResult{string(b[:n]), err}
			}()
			synctest.Wait()
			return c
		}
		for _, want := range []readResult{{"a", nil}, {"", io.EOF}} {
			got := read()
			step <- struct{}{}
			synctest.Wait()
			select {
			case r := <-got:
				assert.Equal(t, want, r)
			default:
				t.Fatalf("a waiting read is still blocked, want %q, %v", want.body, want.err)
			}
		}
		require.NoError(t, resp.Body.Close())
	})
}

// Like net/http, a cancelled request's body fails to read, even with the
// whole body already written by a handler that has returned.
func TestMemTransportCancelledBodyFailsToRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := memTestTransport(t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "whole")
			w.(http.Flusher).Flush()
		}))
		ctx, cancel := context.WithCancel(t.Context())
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc.test/", nil)
		require.NoError(t, err)
		resp, err := tr.RoundTrip(req)
		require.NoError(t, err)
		synctest.Wait() // the handler has returned
		cancel()
		b, err := io.ReadAll(resp.Body)
		assert.Empty(t, b)
		assert.ErrorIs(t, err, context.Canceled)
		require.NoError(t, resp.Body.Close())
	})
}

// Once the client closes the body, the handler's next write fails, however
// small, so that a handler streaming until a write fails stops there.
func TestMemTransportWriteAfterBodyCloseFails(t *testing.T) {
	var writeErr error
	tr := memTestTransport(t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "a")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		_, writeErr = io.WriteString(w, "b")
	}))
	resp, err := (&http.Client{Transport: tr}).Get("http://svc.test/")
	require.NoError(t, err)
	_, err = io.ReadFull(resp.Body, make([]byte, 1))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Error(t, writeErr)
}
