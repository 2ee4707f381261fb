package caracal_test

import (
	"context"
	"net/http"
	"sync/atomic"
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
	c, giver, peer := editedDelegations(t, func(m map[string]any) { delete(m, "scopes") })

	d, err := c.Delegate(giver.Context(), peer.ID(),
		caracal.Grant.Narrow([]string{"tickets:read"}, tickets, caracal.Constraints{}, time.Minute))
	require.NoError(t, err)
	assert.Equal(t, []string{"tickets:read"}, d.Scopes)
	assert.Equal(t, tickets, d.Resource)
	assert.Equal(t, peer.ID(), d.TargetSessionID)
}

// A delegation answered for other sessions or applications than the ones
// asked for, or with scopes wider than asked, is about another edge: it is
// refused as an invalid answer, for Delegate and for a narrowed spawn,
// instead of its id being handed out or bound as the new session's
// delegation.
func TestDelegateAnsweredForAnotherEdgeIsRefused(t *testing.T) {
	const otherID = "0198d0a1-0000-7000-8000-000000000001"
	for field, value := range map[string]any{
		"source_session_id":       otherID,
		"target_session_id":       otherID,
		"issuer_application_id":   "app-other",
		"receiver_application_id": "app-other",
		"scopes":                  []string{"tickets:read", "tickets:write"},
	} {
		t.Run(field, func(t *testing.T) {
			c, giver, peer := editedDelegations(t, func(m map[string]any) { m[field] = value })
			grant := caracal.Grant.Narrow([]string{"tickets:read"}, tickets, caracal.Constraints{}, time.Minute)

			d, err := c.Delegate(giver.Context(), peer.ID(), grant)
			require.ErrorIs(t, err, caracal.ErrUnavailable, "delegated %+v", d)
			child, err := c.Spawn(giver.Context(), caracal.WithGrant(grant))
			require.ErrorIs(t, err, caracal.ErrUnavailable, "spawned %v", child)
		})
	}
}

// A delegation answered with a later expiry than the one asked for (its
// expires_at an hour past its created_at, for a grant that ends in a
// minute) is refused as an invalid answer, instead of the delegation and the
// narrowed session's edge reporting an expiry they do not have.
func TestDelegateAnsweredWithALongerLifeIsRefused(t *testing.T) {
	c, giver, peer := editedDelegations(t, func(m map[string]any) {
		created, err := time.Parse(time.RFC3339Nano, m["created_at"].(string))
		if err == nil {
			m["expires_at"] = created.Add(time.Hour).UTC().Format(time.RFC3339Nano)
		}
	})
	grant := caracal.Grant.Narrow([]string{"tickets:read"}, tickets, caracal.Constraints{ExpiresAt: time.Now().Add(time.Minute)}, 0)

	d, err := c.Delegate(giver.Context(), peer.ID(), grant)
	require.ErrorIs(t, err, caracal.ErrUnavailable, "delegated %+v", d)
	child, err := c.Spawn(giver.Context(), caracal.WithGrant(grant))
	require.ErrorIs(t, err, caracal.ErrUnavailable, "spawned %v", child)
}

// A delegation from a session that holds an edge is made under that edge:
// one answered under another parent edge is refused as an invalid answer.
func TestDelegateAnsweredUnderAnotherParentEdgeIsRefused(t *testing.T) {
	const otherID = "0198d0a1-0000-7000-8000-000000000001"
	var edit atomic.Bool
	c, giver, peer := editedDelegations(t, func(m map[string]any) {
		if edit.Load() && m["parent_edge_id"] != nil {
			m["parent_edge_id"] = otherID
		}
	})
	mid, err := c.Spawn(giver.Context(), caracal.WithGrant(
		caracal.Grant.Narrow([]string{"tickets:read"}, tickets, caracal.Constraints{MaxHops: 3}, time.Minute)))
	require.NoError(t, err)
	require.NotEmpty(t, mid.Agent().DelegationID())
	grant := caracal.Grant.Narrow([]string{"tickets:read"}, tickets, caracal.Constraints{MaxHops: 2}, 30*time.Second)

	edit.Store(true)
	d, err := c.Delegate(mid.Context(), peer.ID(), grant)
	require.ErrorIs(t, err, caracal.ErrUnavailable, "delegated %+v", d)
	edit.Store(false)
	d, err = c.Delegate(mid.Context(), peer.ID(), grant)
	require.NoError(t, err)
	assert.NotEmpty(t, d.ID)
}

// The Coordinator may round an expiry asked for: an edge answered with one
// less than a second later than asked is the one asked for.
func TestDelegateAnsweredWithARoundedExpiryIsAccepted(t *testing.T) {
	c, giver, peer := editedDelegations(t, func(m map[string]any) {
		if s, ok := m["expires_at"].(string); ok {
			if exp, err := time.Parse(time.RFC3339Nano, s); err == nil {
				m["expires_at"] = exp.Add(500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
			}
		}
	})
	until := time.Now().Add(time.Minute).Truncate(time.Second)
	d, err := c.Delegate(giver.Context(), peer.ID(),
		caracal.Grant.Narrow([]string{"tickets:read"}, tickets, caracal.Constraints{ExpiresAt: until}, 0))
	require.NoError(t, err)
	assert.WithinDuration(t, until, d.ExpiresAt, time.Second)
}

// editedDelegations starts a stack and a client of it whose delegation
// answers pass through edit on the way back, and two root sessions of the
// client: giver (a dispatcher) and peer (a reader).
func editedDelegations(t *testing.T, edit func(map[string]any)) (c *caracal.Client, giver, peer *caracal.Session) {
	t.Helper()
	st := caracaltest.Start(t)
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: editAnswers(base, "/delegations", edit)}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	giver, err = c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	peer, err = c.Spawn(t.Context(), caracal.WithLabels("reader"))
	require.NoError(t, err)
	return c, giver, peer
}
