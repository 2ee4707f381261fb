package caracaltest

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A trailer a handler announces only through http.TrailerPrefix, after
// the header went out, reaches the client as it does over a connection.
func TestMemTransportUndeclaredTrailer(t *testing.T) {
	for range 20 {
		tr := memTestTransport(t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "hello")
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
