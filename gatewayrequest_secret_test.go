package caracal_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A path GatewayRequest refuses may carry a key in its query (or a
// user:password, when it is a whole URL given by mistake): the error names
// the problem without repeating the key, as for a configured URL.
func TestGatewayRequestErrorHidesPathSecrets(t *testing.T) {
	const secret = "pathS3cretValue"
	_, c := newStack(t)
	for _, path := range []string{
		"/tickets/1?api_key=" + secret + "#top",
		"/tickets/../admin?api_key=" + secret,
		"//user:" + secret + "@evil.example/x",
		"https://user:" + secret + "@evil.example/x",
		"/tickets/%zz?api_key=" + secret,
	} {
		_, err := c.GatewayRequest(t.Context(), http.MethodGet, "resource://tickets", path, nil)
		require.Error(t, err, path)
		assert.NotContains(t, err.Error(), secret, path)
	}
}
