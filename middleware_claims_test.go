package caracal_test

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// TestCustomVerifierClaimsBindAllOrNothing: claims without a zone or an
// application, or with a hop count outside 0..10, bind nothing.
func TestCustomVerifierClaimsBindAllOrNothing(t *testing.T) {
	c := mwClient(t, http.DefaultClient)
	for name, tc := range map[string]struct {
		claims caracal.Claims
		status int
		code   string
	}{
		"no zone":        {caracal.Claims{ApplicationID: "a", SessionID: "s"}, http.StatusUnauthorized, "invalid_token"},
		"no application": {caracal.Claims{ZoneID: "z", SessionID: "s"}, http.StatusUnauthorized, "invalid_token"},
		"negative hop":   {caracal.Claims{ZoneID: "z", ApplicationID: "a", SessionID: "s", Hop: -1}, http.StatusForbidden, "hop_count_exceeded"},
	} {
		t.Run(name, func(t *testing.T) {
			mw, err := c.Middleware(caracal.WithVerifier(stubVerifier{claims: tc.claims}))
			require.NoError(t, err)
			var none seen
			rec := serve(mw(none.handler()), http.Header{"Authorization": {"Bearer opaque"}})
			assert.Equal(t, tc.status, rec.Code)
			assert.Contains(t, rec.Body.String(), `"error":"`+tc.code+`"`)
			assert.Zero(t, none.calls.Load())
		})
	}
}

// TestVerifiedFirstEdgeHasNoParent: a token whose delegation path holds only
// the edge it presents binds that edge and no parent edge.
func TestVerifiedFirstEdgeHasNoParent(t *testing.T) {
	s := newMWSigner(t, "kid-1")
	var fetches atomic.Int32
	c := mwClient(t, jwksClient(s, &fetches))
	mw, err := c.Middleware(caracal.VerifyTokens(mwResource))
	require.NoError(t, err)
	cl := resourceClaims()
	cl["delegation_edge_id"], cl["delegation_path"], cl["hop_count"] = "edge-1", []string{"edge-1"}, 1
	var got seen
	rec := serve(mw(got.handler()), http.Header{"Authorization": {"Bearer " + s.sign(t, cl)}})
	require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
	a := got.agent.Load()
	assert.Equal(t, "edge-1", a.DelegationID())
	assert.Empty(t, a.ParentDelegationID())
	assert.Equal(t, 1, a.Hop())
}

// TestVerifyTokensDefaultIssuerIgnoresTrailingSlash: with an STS URL
// configured with trailing slashes, the default issuer is still the STS
// URL the tokens carry, without them, as the STS client reads that URL.
func TestVerifyTokensDefaultIssuerIgnoresTrailingSlash(t *testing.T) {
	for _, suffix := range []string{"/", "//"} {
		t.Run(suffix, func(t *testing.T) {
			s := newMWSigner(t, "kid-1")
			var fetches atomic.Int32
			cfg := mwConfig()
			cfg.STSURL = mwIssuer + suffix
			c, err := caracal.NewFromConfig(cfg, caracal.WithHTTPClient(jwksClient(s, &fetches)))
			require.NoError(t, err)
			mw, err := c.Middleware(caracal.VerifyTokens(mwResource))
			require.NoError(t, err)
			var got seen
			rec := serve(mw(got.handler()), http.Header{"Authorization": {"Bearer " + s.sign(t, resourceClaims())}})
			require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
			assert.Equal(t, int32(1), fetches.Load())

			cl := resourceClaims()
			cl["iss"] = mwIssuer + "/"
			rec = serve(mw(got.handler()), http.Header{"Authorization": {"Bearer " + s.sign(t, cl)}})
			assert.Equal(t, http.StatusUnauthorized, rec.Code, "the issuer is compared exactly")
		})
	}
}

// TestVerifyTokensInsecureURLsInProduction: AllowInsecureURLs lifts the
// https rule for the JWKS URL too.
func TestVerifyTokensInsecureURLsInProduction(t *testing.T) {
	cfg := mwConfig()
	cfg.Production, cfg.AllowInsecureURLs = true, true
	prod, err := caracal.NewFromConfig(cfg)
	require.NoError(t, err)
	_, err = prod.Middleware(caracal.VerifyTokens(mwResource, caracal.VerifyJWKSURL("http://keys.example/jwks")))
	require.NoError(t, err)
	_, err = prod.Middleware(caracal.VerifyTokens(mwResource))
	require.NoError(t, err, "the default JWKS URL, under a plain-http STS URL")
}
