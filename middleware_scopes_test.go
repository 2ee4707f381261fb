package caracal_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// A handler behind a verifying middleware reads the scopes the caller's
// token grants, to check per route what RequireScopes checks for all.
func TestVerifiedAgentCarriesTheTokensScopes(t *testing.T) {
	st, c := newStack(t)
	mw, err := c.Middleware(caracal.VerifyTokens("resource://tickets", caracal.VerifyIssuer(st.Issuer())))
	require.NoError(t, err)
	root, reader, a := boundBehindGateway(t, st, c, mw)
	assert.Equal(t, []string{"tickets:read"}, a.Scopes())
	a.Scopes()[0] = "changed"
	assert.Equal(t, []string{"tickets:read"}, a.Scopes(), "a copy")
	assert.Nil(t, reader.Agent().Scopes(), "a session this process holds carries no token scopes")

	// Moved to another delegation, the agent no longer claims the token's.
	d, err := c.Delegate(root.Context(), reader.ID(), caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Minute))
	require.NoError(t, err)
	moved, err := c.AcceptDelegation(caracal.NewContext(t.Context(), a), d.ID)
	require.NoError(t, err)
	b, _ := caracal.FromContext(moved)
	assert.Equal(t, d.ID, b.DelegationID())
	assert.Nil(t, b.Scopes())
}

// A caller's Verifier may keep the scopes slice it returned and change it
// later: the bound agent keeps the scopes it was bound with.
func TestCustomVerifierScopesAreCopied(t *testing.T) {
	c := mwClient(t, http.DefaultClient)
	scopes := []string{"tickets:read"}
	mw, err := c.Middleware(caracal.WithVerifier(stubVerifier{claims: caracal.Claims{ZoneID: "z", ApplicationID: "a", Scopes: scopes}}))
	require.NoError(t, err)
	var got seen
	rec := serve(mw(got.handler()), http.Header{"Authorization": {"Bearer opaque"}})
	require.Equal(t, http.StatusNoContent, rec.Code)
	scopes[0] = "tickets:delete"
	assert.Equal(t, []string{"tickets:read"}, got.agent.Load().Scopes())
}
