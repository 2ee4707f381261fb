package caracal_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// Everything a client runs in the background (service leases, mandate
// pools, the key cache of a verifying middleware, in-flight retires) ends
// with Client.Close: the bubble would report a goroutine left blocked.
func TestClientCloseLeavesNoGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient()
		require.NoError(t, err)

		root, err := c.Spawn(t.Context())
		require.NoError(t, err)
		reader, err := c.Spawn(root.Context(), caracal.WithLabels("reader"),
			caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Hour)))
		require.NoError(t, err)
		svc, err := c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		_, err = c.SpawnService(svc.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)

		time.Sleep(10 * time.Minute) // the leases renew
		hc := c.HTTPClient(caracal.WithScopes("tickets:read"), caracal.WithPrefetch(2))
		for range 3 {
			req, err := http.NewRequestWithContext(reader.Context(), http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets/1", nil)
			require.NoError(t, err)
			resp, err := hc.Do(req)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode)
		}
		mw, err := c.Middleware(caracal.VerifyTokens("resource://tickets", caracal.AcceptSessionTokens()))
		require.NoError(t, err)
		hdr, err := c.Headers(reader.Context())
		require.NoError(t, err)
		req, err := http.NewRequest(http.MethodGet, "http://resource.test/tickets/1", nil)
		require.NoError(t, err)
		req.Header = hdr
		rec := &statusRecorder{header: http.Header{}}
		mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })).ServeHTTP(rec, req)
		assert.Equal(t, http.StatusNoContent, rec.status)

		synctest.Wait() // the pools are full and their workers wait
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		require.NoError(t, c.Close(ctx), "Close waits for its background work")
		for _, id := range []string{root.ID(), reader.ID(), svc.ID()} {
			info, _ := st.SessionInfo(id)
			assert.Equal(t, "terminated", info.Status, id)
		}
	})
}

type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header         { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *statusRecorder) WriteHeader(code int)        { r.status = code }
