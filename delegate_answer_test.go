package caracal_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A Coordinator answer to a delegation that leaves out its scopes gives a
// Delegation with the scopes that were asked for, not none.
func TestDelegateAnswerWithoutScopesKeepsTheAskedOnes(t *testing.T) {
	st := caracaltest.Start(t)
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	hc := &http.Client{Transport: editAnswers(base, "/delegations", func(m map[string]any) { delete(m, "scopes") })}
	c, err := st.NewClient(caracal.WithHTTPClient(hc))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	giver, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	peer, err := c.Spawn(t.Context(), caracal.WithLabels("reader"))
	require.NoError(t, err)

	d, err := c.Delegate(giver.Context(), peer.ID(),
		caracal.Grant.Narrow([]string{"tickets:read"}, tickets, caracal.Constraints{}, time.Minute))
	require.NoError(t, err)
	assert.Equal(t, []string{"tickets:read"}, d.Scopes)
	assert.Equal(t, tickets, d.Resource)
	assert.Equal(t, peer.ID(), d.TargetSessionID)
}
