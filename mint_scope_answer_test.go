package caracal_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// A mandate the STS answers with more scopes than the mint asked for is
// refused as an invalid answer: presented at the Gateway, the request would
// act with authority the caller narrowed it away from (here tickets:write,
// which the session holds, for a request that asked for tickets:read only).
func TestMintAnsweredWithWiderScopesIsNotPresented(t *testing.T) {
	g := startGoverned(t)
	writer := g.child(t, "writer", tickets, "tickets:read", "tickets:write")
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	c, err := g.st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: editMints(base, func(form url.Values) {
		if form.Get("agent_session_id") == writer.ID() {
			form.Set("scope", "tickets:read tickets:write")
		}
	})}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })

	ctx := caracal.NewContext(t.Context(), writer.Agent())
	for _, prefetch := range []bool{false, true} {
		opts := []caracal.TransportOption{caracal.WithScopes("tickets:read")}
		if prefetch {
			opts = append(opts, caracal.WithPrefetch(2))
		}
		resp, err := get(t, c.HTTPClient(opts...), ctx, g.url(tickets, "/tickets/1"))
		if resp != nil {
			_ = resp.Body.Close()
		}
		require.ErrorIs(t, err, caracal.ErrUnavailable, "prefetch %v", prefetch)
		assert.Zero(t, g.upstream.Load(), "prefetch %v: nothing reached the upstream", prefetch)
	}
}
