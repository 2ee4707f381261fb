package caracaltest

import (
	"io"
	"net/http"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An in-process upstream that exits its goroutine (t.Fatal called from a
// handler does) drops the request, as net/http closes the connection of
// such a handler, instead of leaving the client waiting.
func TestMemTransportHandlerGoexitDropsRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := Start(t, InMemory())
		hc := st.HTTPClient()
		// The stack's sweeper keeps the bubble's clock moving, so a hung
		// request would wait out this timeout rather than deadlock.
		hc.Timeout = time.Minute
		require.NoError(t, st.SetUpstream("resource://tickets", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/late" {
				_, _ = io.WriteString(w, "partial")
				http.NewResponseController(w).Flush()
			}
			runtime.Goexit()
		})))

		_, err := hc.Get(st.UpstreamURL("resource://tickets") + "/early")
		require.Error(t, err)
		assert.ErrorIs(t, err, io.ErrUnexpectedEOF)

		resp, err := hc.Get(st.UpstreamURL("resource://tickets") + "/late")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
		assert.Equal(t, "partial", string(b))
	})
}
