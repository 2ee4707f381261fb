package caracal_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A server's error text reaches err.Error() (and so every log line that
// prints it) as one bounded line, whatever the server sent, with the code
// and request id intact.
func TestServerErrorTextIsOneBoundedLine(t *testing.T) {
	st, c := newStack(t)
	desc := "policy denied\nlevel=ERROR msg=forged\r\n" + strings.Repeat("x", 200_000)
	st.Inject(caracaltest.RouteToken, caracaltest.Fault{Status: 403, Code: "access_denied", Description: desc, Times: 1})
	_, err := c.Spawn(t.Context())
	var e *caracal.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 403, e.StatusCode)
	assert.Equal(t, "access_denied", e.Code)
	assert.NotEmpty(t, e.RequestID)
	assert.ErrorIs(t, err, caracal.ErrAccessDenied)
	assert.True(t, strings.HasPrefix(e.Description, "policy denied"), e.Description[:40])
	assert.NotContains(t, err.Error(), "\n")
	assert.NotContains(t, err.Error(), "\r")
	assert.Less(t, len(err.Error()), 2048, "the message is bounded")
}

// The client secret is taken out of a server's error text before the text
// is cut to its bound: a secret the cut would split leaves no piece behind.
func TestServerErrorTextCutLeavesNoPieceOfTheSecret(t *testing.T) {
	st, c := newStack(t)
	secret := st.Application().Secret
	require.GreaterOrEqual(t, len(secret), 16)
	half := len(secret) / 2
	desc := strings.Repeat("x", 512-half) + secret
	st.Inject(caracaltest.RouteToken, caracaltest.Fault{Status: 400, Code: "invalid_request", Description: desc, Times: 1})
	_, err := c.Spawn(t.Context())
	var e *caracal.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 400, e.StatusCode)
	assert.NotContains(t, err.Error(), secret[:half])
}
