package caracal_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A blank scope in RequireScopes (an unset variable, say) is refused when the
// middleware is built: dropping it would leave RequireScopes("") requiring
// nothing, so that every token passed. A blank application in
// AcceptSessionTokens is refused too, instead of matching no token.
func TestMiddlewareRefusesBlankVerifyOptions(t *testing.T) {
	st := caracaltest.Start(t)
	c, err := st.NewClient()
	require.NoError(t, err)
	defer c.Close(t.Context())

	for name, opt := range map[string]caracal.VerifyOption{
		"RequireScopes empty":       caracal.RequireScopes(""),
		"RequireScopes space":       caracal.RequireScopes("  "),
		"RequireScopes one blank":   caracal.RequireScopes("tickets:read", ""),
		"AcceptSessionTokens empty": caracal.AcceptSessionTokens(""),
		"AcceptSessionTokens space": caracal.AcceptSessionTokens("app-test", " "),
	} {
		t.Run(name, func(t *testing.T) {
			mw, err := c.Middleware(caracal.VerifyTokens(mwResource, opt))
			require.Error(t, err)
			assert.Nil(t, mw)
			assert.Contains(t, err.Error(), strings.Fields(name)[0])
		})
	}
	_, err = c.Middleware(caracal.VerifyTokens(mwResource,
		caracal.RequireScopes("tickets:read tickets:write"), caracal.AcceptSessionTokens(" app-test ")))
	require.NoError(t, err)
}
