package caracal_test

import (
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
