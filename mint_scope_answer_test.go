package caracal_test

import (
	"net/url"
	"testing"
)

// A mandate the STS answers with more scopes than the mint asked for is
// refused as an invalid answer: presented at the Gateway, the request would
// act with authority the caller narrowed it away from (here tickets:write,
// which the session holds, for a request that asked for tickets:read only).
func TestMintAnsweredWithWiderScopesIsNotPresented(t *testing.T) {
	g := startGoverned(t)
	writer := g.child(t, "writer", tickets, "tickets:read", "tickets:write")
	refuseMintAnswers(t, g, writer.Agent(), func(form url.Values) {
		if form.Get("agent_session_id") == writer.ID() {
			form.Set("scope", "tickets:read tickets:write")
		}
	})
}
