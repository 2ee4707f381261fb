package caracaltest_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// The Gateway refuses traversal in raw paths itself (PROTOCOL §8.2 row 9);
// nothing in front of it cleans the path or redirects first.
func TestGatewayRefusesRawDotSegmentPaths(t *testing.T) {
	// A bearer that passes the Gateway's checks before row 9 (shape, expiry
	// margin, zone and client patterns); its signature is checked later.
	seg := func(v string) string { return base64.RawURLEncoding.EncodeToString([]byte(v)) }
	bearer := seg(`{"alg":"ES256"}`) + "." +
		seg(fmt.Sprintf(`{"exp":%d,"zone_id":"zone-test","client_id":"app-test"}`, time.Now().Add(10*time.Minute).Unix())) + "." +
		seg("sig")

	for _, mode := range []struct {
		name string
		opts []caracaltest.Option
	}{{"loopback", nil}, {"in memory", []caracaltest.Option{caracaltest.InMemory()}}} {
		t.Run(mode.name, func(t *testing.T) {
			st := caracaltest.Start(t, mode.opts...)
			hc := st.HTTPClient()
			hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			for _, path := range []string{"/tickets/../admin", "/tickets/./1", "/a//../b"} {
				req, err := http.NewRequest(http.MethodGet, st.GatewayURL()+path, nil)
				require.NoError(t, err)
				req.Header.Set("Authorization", "Bearer "+bearer)
				req.Header.Set("X-Caracal-Resource", "resource://tickets")
				resp, err := hc.Do(req)
				require.NoError(t, err)
				var body struct {
					Error       string `json:"error"`
					Description string `json:"error_description"`
				}
				require.NoError(t, json.NewDecoder(resp.Body).Decode(&body), path)
				resp.Body.Close()
				require.Equal(t, http.StatusBadRequest, resp.StatusCode, path)
				require.Equal(t, "invalid_token", body.Error, path)
				require.Equal(t, "path traversal not permitted", body.Description, path)
			}
		})
	}
}

// Only POST /internal/revocations/reload is the Gateway's own (PROTOCOL
// §8.2); a governed request with another method on that path is proxied
// like any other.
func TestGatewayProxiesReloadPathForOtherMethods(t *testing.T) {
	st := caracaltest.Start(t)
	c, err := st.NewClient()
	require.NoError(t, err)
	defer c.Close(t.Context())
	root, err := c.Spawn(t.Context())
	require.NoError(t, err)
	defer root.Close(t.Context())
	reader, err := c.Spawn(root.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Hour)))
	require.NoError(t, err)
	defer reader.Close(t.Context())

	hc := c.HTTPClient(caracal.WithScopes("tickets:read"))
	req, err := http.NewRequestWithContext(reader.Context(), http.MethodGet,
		st.UpstreamURL("resource://tickets")+"/internal/revocations/reload", nil)
	require.NoError(t, err)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var echo caracaltest.EchoResponse
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&echo))
	require.Equal(t, "/internal/revocations/reload", echo.Path)
}
