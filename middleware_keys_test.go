package caracal_test

import (
	"bytes"
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
	"github.com/caracal-go/caracal/caracaltest"
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

// keyOutageLog sends one governed GET, from a reader of c, to a resource
// server whose verifying middleware (on a client with clientOpts, verifying
// with verifyOpts) meets fault when it fetches the signing keys. It checks
// that the request was refused 401 without reaching the handler and returns
// what the middleware logged.
func keyOutageLog(t *testing.T, st *caracaltest.Stack, c *caracal.Client, fault caracaltest.Fault, clientOpts []caracal.Option, verifyOpts ...caracal.VerifyOption) string {
	t.Helper()
	var logs bytes.Buffer
	rc, _ := newClient(t, st, append(clientOpts, caracal.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))...)
	mw, err := rc.Middleware(caracal.VerifyTokens("resource://tickets", verifyOpts...))
	require.NoError(t, err)
	var got seen
	require.NoError(t, st.SetUpstream("resource://tickets", mw(got.handler())))
	st.Inject(caracaltest.RouteJWKS, fault)

	_, reader := narrowReader(t, c, caracal.Constraints{}, "reader")
	req, err := http.NewRequestWithContext(reader.Context(), http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets/1", nil)
	require.NoError(t, err)
	resp, err := c.HTTPClient(caracal.WithScopes("tickets:read")).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Zero(t, got.calls.Load())
	return logs.String()
}

// TestMiddlewareKeyOutageLogSaysWhy: the one log line of a key outage names
// what failed (the JWKS URL and the STS's answer), not only the 401 the
// clients got, so that the operator can act on it.
func TestMiddlewareKeyOutageLogSaysWhy(t *testing.T) {
	st, c := newStack(t)
	line := keyOutageLog(t, st, c, caracaltest.Fault{Status: http.StatusServiceUnavailable, Description: "key store offline"}, nil)
	assert.Contains(t, line, "cannot fetch the STS signing keys")
	assert.Contains(t, line, st.STSURL()+"/.well-known/jwks.json", "the URL that failed")
	assert.Contains(t, line, "503 sts_unavailable: key store offline", "what the STS answered: status, code and text")
}
