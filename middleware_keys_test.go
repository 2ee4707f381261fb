package caracal_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// TestMiddlewareKeyOutageWithAgedKeysLogsOnce: while the STS is down but
// the aged key set still verifies, a stream of tokens under a key id the
// set lacks is refused. The outage is logged once, not once per refused
// token that follows an accepted one.
func TestMiddlewareKeyOutageWithAgedKeysLogsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newMWSigner(t, "kid-1")
		var down atomic.Bool
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if down.Load() {
				http.Error(w, `{"error":"sts_unavailable"}`, http.StatusServiceUnavailable)
				return
			}
			_, _ = w.Write(s.jwks())
		})
		hc := &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			return rec.Result(), nil
		})}
		var records atomic.Int32
		c := mwClient(t, hc, caracal.WithLogger(slog.New(countHandler{&records})))
		mw, err := c.Middleware(caracal.VerifyTokens(mwResource))
		require.NoError(t, err)
		var got seen
		mwh := mw(got.handler())
		good := http.Header{"Authorization": {"Bearer " + s.sign(t, resourceClaims())}}
		require.Equal(t, http.StatusNoContent, serve(mwh, good).Code)

		down.Store(true)
		time.Sleep(5 * time.Minute) // the key set ages; the STS cannot be reached
		bogus := http.Header{"Authorization": {"Bearer " + newMWSigner(t, "kid-bogus").sign(t, resourceClaims())}}
		for range 5 {
			require.Equal(t, http.StatusNoContent, serve(mwh, good).Code, "the aged key still verifies")
			require.Equal(t, http.StatusUnauthorized, serve(mwh, bogus).Code)
		}
		assert.Equal(t, int32(1), records.Load(), "one outage, one log line")

		// The STS comes back: a fetch succeeds and ends the outage, so the
		// next one is logged again.
		down.Store(false)
		time.Sleep(30 * time.Second) // the refetch cooldown
		require.Equal(t, http.StatusNoContent, serve(mwh, good).Code)
		down.Store(true)
		time.Sleep(5 * time.Minute)
		require.Equal(t, http.StatusNoContent, serve(mwh, good).Code)
		require.Equal(t, http.StatusUnauthorized, serve(mwh, bogus).Code)
		assert.Equal(t, int32(2), records.Load(), "a second outage, a second log line")
	})
}
