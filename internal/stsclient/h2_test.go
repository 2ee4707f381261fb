package stsclient

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/h2test"
)

// net/http's HTTP/2 transport re-sends a request whose stream the server
// reset with PROTOCOL_ERROR, which does not mean the STS left it
// unprocessed, whenever it can rewind the body. A mint is never sent twice:
// the first one may have minted a mandate, or consumed the approval it
// presents.
func TestMintIsNeverResentByHTTP2(t *testing.T) {
	srv := h2test.Start(t,
		h2test.Action{Reset: h2test.CodeProtocol},
		h2test.Action{Body: `{"access_token":"x","expires_in":300}`})
	c := New(Config{BaseURL: srv.URL(), ZoneID: "zone-test", ApplicationID: "app-test", ClientSecret: secret,
		Resources: []string{"resource://tickets"}, HTTPClient: h2test.Client(t)})
	_, err := c.Mint(t.Context(), MintRequest{Resource: "resource://tickets", Scopes: []string{"tickets:read"},
		AgentSessionID: "S1", DelegationEdgeID: "E1", ApprovalID: "A1"})
	require.Error(t, err, "the reset mint fails")
	assert.Equal(t, 1, srv.Requests(), "the mint reached the STS once")
	assert.NotContains(t, err.Error(), secret)
}
