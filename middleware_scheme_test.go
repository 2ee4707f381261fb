package caracal_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// TestMiddlewareOtherSchemeIsNoBearer: an Authorization header that is not
// "Bearer <token>" carries no bearer (PROTOCOL §7.3), so it is answered as a
// missing one: 401 missing_token with a challenge that names no error code
// (RFC 6750 §3.1), not invalid_token, which tells a client to replace a
// bearer it never sent.
func TestMiddlewareOtherSchemeIsNoBearer(t *testing.T) {
	st, _ := newStack(t)
	rc, hc := newClient(t, st)
	mw, err := rc.Middleware(caracal.VerifyTokens("resource://tickets"))
	require.NoError(t, err)
	var got seen
	srv := httptest.NewServer(mw(got.handler()))
	defer srv.Close()

	for _, auth := range []string{"Basic dXNlcjpwYXNz", "Digest username=\"u\"", "ApiKey abc", "Token"} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/tickets/1", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", auth)
		resp, err := hc.Do(req)
		require.NoError(t, err)
		var body struct {
			Error string `json:"error"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, auth)
		assert.Equal(t, "missing_token", body.Error, auth)
		assert.Equal(t, `Bearer realm="caracal"`, resp.Header.Get("WWW-Authenticate"), auth)
	}
	// A Bearer credential that is malformed is still an invalid one.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/tickets/1", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer\tabc")
	resp, err := hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, `Bearer realm="caracal", error="invalid_token"`, resp.Header.Get("WWW-Authenticate"))
	assert.Zero(t, got.calls.Load())
}
