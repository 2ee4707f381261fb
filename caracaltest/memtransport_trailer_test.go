package caracaltest

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A trailer a handler announces only through http.TrailerPrefix, after
// the header went out (flushed, so the body is chunked), reaches the client
// as it does over a connection.
func TestMemTransportUndeclaredTrailer(t *testing.T) {
	for range 20 {
		tr := memTestTransport(t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "hello")
			w.(http.Flusher).Flush()
			w.Header().Set(http.TrailerPrefix+"X-Sum", "1")
		}))
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://svc.test/", nil)
		require.NoError(t, err)
		resp, err := tr.RoundTrip(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.Equal(t, "hello", string(body))
		assert.Equal(t, "1", resp.Trailer.Get("X-Sum"))
	}
}

// The client may look at the announced trailer names as soon as it has the
// response, while the handler may still be running: the handler's trailers
// are filled in on the reader's side, at the body's end, as net/http does,
// so that the two never race (go test -race).
func TestMemTransportAnnouncedTrailerReadWhileTheHandlerRuns(t *testing.T) {
	tr := memTestTransport(t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		_, _ = io.WriteString(w, "hello")
		w.Header().Set("X-Sum", "1")
	}))
	for range 20 {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://svc.test/", nil)
		require.NoError(t, err)
		resp, err := tr.RoundTrip(req)
		require.NoError(t, err)
		_, announced := resp.Trailer["X-Sum"]
		assert.True(t, announced)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.Equal(t, "hello", string(body))
		assert.Equal(t, "1", resp.Trailer.Get("X-Sum"))
	}
}
