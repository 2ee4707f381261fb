package caracal_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

type stubVerifier struct {
	claims caracal.Claims
	err    error
}

func (v stubVerifier) Verify(context.Context, string) (caracal.Claims, error) { return v.claims, v.err }

func TestMiddlewareCustomVerifier(t *testing.T) {
	c := mwClient(t, http.DefaultClient)
	var got seen
	mw, err := c.Middleware(caracal.WithVerifier(stubVerifier{claims: caracal.Claims{ZoneID: "z", ApplicationID: "a", SessionID: "s", DelegationID: "d", Hop: 3}}))
	require.NoError(t, err)
	rec := serve(mw(got.handler()), http.Header{"Authorization": {"Bearer opaque"}, "Baggage": {"caracal.agent_session=forged"}})
	require.Equal(t, http.StatusNoContent, rec.Code)
	a := got.agent.Load()
	assert.Equal(t, "s", a.SessionID())
	assert.Equal(t, 3, a.Hop())

	// Refusals are answered as PROTOCOL §7.5 has the adapters answer them:
	// 401 invalid_token for a refused or incomplete token, 403
	// hop_count_exceeded past 10 hops.
	for _, tc := range []struct {
		v      stubVerifier
		status int
		code   string
	}{
		{stubVerifier{err: errors.New("nope")}, http.StatusUnauthorized, "invalid_token"},
		{stubVerifier{claims: caracal.Claims{ZoneID: "z"}}, http.StatusUnauthorized, "invalid_token"},
		{stubVerifier{claims: caracal.Claims{ZoneID: "z", ApplicationID: "a", Hop: 11}}, http.StatusForbidden, "hop_count_exceeded"},
	} {
		mw, err := c.Middleware(caracal.WithVerifier(tc.v))
		require.NoError(t, err)
		var none seen
		rec := serve(mw(none.handler()), http.Header{"Authorization": {"Bearer opaque"}})
		assert.Equal(t, tc.status, rec.Code, "%+v", tc.v)
		var body struct{ Error string }
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
		assert.Equal(t, tc.code, body.Error, "%+v", tc.v)
		assert.Zero(t, none.calls.Load())
	}
}

// The 10-hop bound of PROTOCOL §7.5 is pinned at its edge: a token at 10
// hops binds, one at 11 (or a negative count) is refused with 403.
func TestMiddlewareCustomVerifierHopEdge(t *testing.T) {
	c := mwClient(t, http.DefaultClient)
	for hop, want := range map[int]int{10: http.StatusNoContent, 11: http.StatusForbidden, -1: http.StatusForbidden} {
		mw, err := c.Middleware(caracal.WithVerifier(stubVerifier{claims: caracal.Claims{ZoneID: "z", ApplicationID: "a", SessionID: "s", Hop: hop}}))
		require.NoError(t, err)
		var got seen
		rec := serve(mw(got.handler()), http.Header{"Authorization": {"Bearer opaque"}})
		require.Equal(t, want, rec.Code, "hop %d", hop)
		if want == http.StatusNoContent {
			assert.Equal(t, hop, got.agent.Load().Hop())
		} else {
			assert.Zero(t, got.calls.Load(), "hop %d", hop)
		}
	}
}
