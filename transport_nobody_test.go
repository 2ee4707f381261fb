package caracal_test

import (
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// net/http sends a request whose body is http.NoBody without a body,
// whatever its ContentLength says; a governed one must reach the upstream
// the same way rather than fail after its headers promised bytes that never
// come.
func TestGovernedNoBodyWithStaleContentLength(t *testing.T) {
	g := startGoverned(t)
	hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"))
	var got atomic.Pointer[string]
	h := http.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		s := string(b)
		got.Store(&s)
	}))
	g.next.Store(&h)

	req, err := http.NewRequestWithContext(g.reader.Context(), http.MethodPost, g.url(tickets, "/tickets"), nil)
	require.NoError(t, err)
	req.Body, req.ContentLength = http.NoBody, 5
	resp, err := hc.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotNil(t, got.Load(), "the request reached the upstream")
	assert.Empty(t, *got.Load())
}
