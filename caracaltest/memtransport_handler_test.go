package caracaltest

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
