package caracal_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// The resources a Coordinator answered for a parent's edge are server text
// (its scopes are refused when they are not the ones asked for): when a
// narrowing is refused as wider than that edge, they show quoted, so a line
// break or a direction override in them cannot forge or disguise a line of
// a log that records the error.
func TestWiderThanAnsweredEdgeShowsItQuoted(t *testing.T) {
	const forged = "x\nlevel=ERROR msg=forged\u202e"
	st := caracaltest.Start(t, caracaltest.WithResource(caracaltest.Resource{Identifier: tickets,
		Scopes: []string{"tickets:read", "tickets:write"}}))
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	hc := &http.Client{Transport: editAnswers(base, "/delegations", func(m map[string]any) {
		if ea, ok := m["effective_authority"].(map[string]any); ok {
			ea["resources"] = []string{tickets, forged}
		}
	})}
	c, err := st.NewClient(caracal.WithHTTPClient(hc))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(t.Context()) })
	root, err := c.Spawn(t.Context())
	require.NoError(t, err)
	child, err := c.Spawn(root.Context(), caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, tickets, caracal.Constraints{MaxHops: 3}, time.Minute)))
	require.NoError(t, err)

	for _, g := range []caracal.Authority{
		caracal.Grant.Narrow([]string{"tickets:write"}, tickets, caracal.Constraints{MaxHops: 2}, time.Minute),
		caracal.Grant.Narrow([]string{"tickets:read"}, "resource://ledger", caracal.Constraints{MaxHops: 2}, time.Minute),
	} {
		_, err = c.Spawn(child.Context(), caracal.WithGrant(g))
		require.ErrorIs(t, err, caracal.ErrInvalidGrant, g.String())
		assert.NotContains(t, err.Error(), "\n", g.String())
		assert.NotContains(t, err.Error(), "\u202e", g.String())
	}
}
