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
