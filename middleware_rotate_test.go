package caracal_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// bearerKid reads the kid header of the request's bearer token.
func bearerKid(r *http.Request) string {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	head, _, _ := strings.Cut(tok, ".")
	b, _ := base64.RawURLEncoding.DecodeString(head)
	var h struct{ Kid string }
	_ = json.Unmarshal(b, &h)
	return h.Kid
}

// rotationRig is a resource server behind the Gateway, verifying with
// VerifyTokens, and a reader that calls it through the Gateway; run it in a
// synctest bubble.
type rotationRig struct {
	st    *caracaltest.Stack
	calls *atomic.Int32 // requests the handler served
	kid   *atomic.Value // of the last token that reached the server
	get   func() (int, string)
}

func newRotationRig(t *testing.T) rotationRig {
	st := caracaltest.Start(t, caracaltest.InMemory())
	c, _ := newClient(t, st)
	rc, _ := newClient(t, st) // the resource server's own client
	mw, err := rc.Middleware(caracal.VerifyTokens("resource://tickets"))
	require.NoError(t, err)
	var got seen
	var kid atomic.Value
	h := mw(got.handler())
	require.NoError(t, st.SetUpstream("resource://tickets", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kid.Store(bearerKid(r))
		h.ServeHTTP(w, r)
	})))

	root, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	reader, err := c.Spawn(root.Context(), caracal.WithLabels("reader"), caracal.WithTTL(time.Hour),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Hour)))
	require.NoError(t, err)
	hc := c.HTTPClient(caracal.WithScopes("tickets:read"))
	get := func() (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(reader.Context(), http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets/1", nil)
		require.NoError(t, err)
		resp, err := hc.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	return rotationRig{st: st, calls: &got.calls, kid: &kid, get: get}
}

// TestMiddlewareAcrossKeyRotation: a resource server behind the Gateway,
// verifying with VerifyTokens, keeps accepting governed calls when the zone's
// signing key rotates: the first token under the new key id makes it refetch
// the key set. A second rotation within the refetch cooldown (30 s) of a
// fetch for an unknown key id is refused until the cooldown has passed.
func TestMiddlewareAcrossKeyRotation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRotationRig(t)
		st, get, kid := g.st, g.get, g.kid

		status, body := get()
		require.Equal(t, http.StatusNoContent, status, body)
		require.Equal(t, 1, st.Count(caracaltest.RouteJWKS))
		kid0 := kid.Load()

		// Past the cooldown: the new key id is fetched and accepted.
		time.Sleep(30 * time.Second)
		kid1 := st.RotateSigningKey()
		require.NotEqual(t, kid0, kid1)
		status, body = get()
		require.Equal(t, http.StatusNoContent, status, body)
		assert.Equal(t, kid1, kid.Load(), "the server saw a token under the new key")
		assert.Equal(t, 2, st.Count(caracaltest.RouteJWKS), "one refetch for the new key id")
		assert.Equal(t, int32(2), g.calls.Load())

		// Within the cooldown of that fetch: refused, without a fetch,
		// until the cooldown has passed.
		time.Sleep(29 * time.Second)
		kid2 := st.RotateSigningKey()
		status, body = get()
		assert.Equal(t, http.StatusUnauthorized, status)
		assert.JSONEq(t, `{"error":"invalid_token","error_description":"unknown signing key"}`, body)
		assert.Equal(t, kid2, kid.Load())
		assert.Equal(t, int32(2), g.calls.Load(), "the handler was not called")
		assert.Equal(t, 2, st.Count(caracaltest.RouteJWKS), "no fetch inside the cooldown")

		time.Sleep(time.Second)
		status, body = get()
		require.Equal(t, http.StatusNoContent, status, body)
		assert.Equal(t, 3, st.Count(caracaltest.RouteJWKS))
		assert.Equal(t, int32(3), g.calls.Load())
	})
}

// The routine refetch of an aged key set starts no cooldown: a rotation
// right after it is fetched at the first token under the new key id.
func TestMiddlewareRotationRightAfterRoutineRefetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newRotationRig(t)
		status, body := g.get()
		require.Equal(t, http.StatusNoContent, status, body)

		time.Sleep(5 * time.Minute) // the key set ages
		status, body = g.get()
		require.Equal(t, http.StatusNoContent, status, body)
		require.Equal(t, 2, g.st.Count(caracaltest.RouteJWKS), "the aged set was fetched again")

		time.Sleep(time.Second)
		kid1 := g.st.RotateSigningKey()
		status, body = g.get()
		require.Equal(t, http.StatusNoContent, status, body)
		assert.Equal(t, kid1, g.kid.Load())
		assert.Equal(t, 3, g.st.Count(caracaltest.RouteJWKS))
		assert.Equal(t, int32(3), g.calls.Load())
	})
}
