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

// delegatesOf is the delegation creates st received.
func delegatesOf(st *caracaltest.Stack) int {
	n := 0
	for _, r := range st.Requests() {
		if r.Pattern == caracaltest.RouteDelegate {
			n++
		}
	}
	return n
}

// A session delegating to itself is refused with ErrInvalidGrant before any
// call (the Coordinator would answer 400 self_delegation_denied).
func TestDelegateToItselfIsRefusedLocally(t *testing.T) {
	st, c := newStack(t)
	_, giver := narrowReader(t, c, caracal.Constraints{MaxHops: 3}, "reader")
	before := delegatesOf(st)
	grant := caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{MaxHops: 2}, time.Minute)
	_, err := c.Delegate(giver.Context(), giver.ID(), grant)
	require.ErrorIs(t, err, caracal.ErrInvalidGrant)
	assert.ErrorContains(t, err, "cannot delegate to itself")
	assert.Equal(t, before, delegatesOf(st), "no call")
}

// A session of another zone, even of an application with this client's id,
// delegates nothing through this client: refused before any call.
func TestDelegateFromASessionOfAnotherZoneIsRefused(t *testing.T) {
	st, c := newStack(t)
	other, oc := newStack(t, caracaltest.WithZone("zone-other"))
	foreign, err := oc.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	require.Equal(t, foreign.Agent().ApplicationID(), c.Config().ApplicationID, "the same application id")
	peer, err := c.Spawn(t.Context(), caracal.WithLabels("reader"))
	require.NoError(t, err)

	grant := caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{}, time.Minute)
	_, err = c.Delegate(foreign.Context(), peer.ID(), grant)
	require.ErrorIs(t, err, caracal.ErrInvalidGrant)
	assert.Zero(t, delegatesOf(st))
	assert.Zero(t, delegatesOf(other))
}

// A delegation to a session no longer live on the Coordinator (here one
// ended) is refused with a bare 404 delegation_endpoint_not_found; the
// error names both sessions, says either may be the one not live and what
// ends one, and keeps the Coordinator's answer.
func TestDelegateToASessionNotLiveSaysWhich(t *testing.T) {
	_, c := newStack(t)
	_, giver := narrowReader(t, c, caracal.Constraints{MaxHops: 3}, "reader")
	peer, err := c.Spawn(t.Context(), caracal.WithLabels("reader"))
	require.NoError(t, err)
	require.NoError(t, peer.Close(t.Context()))

	grant := caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{MaxHops: 2}, time.Minute)
	_, err = c.Delegate(giver.Context(), peer.ID(), grant)
	var e *caracal.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "delegation_endpoint_not_found", e.Code)
	assert.NotEmpty(t, e.RequestID)
	assert.ErrorIs(t, err, caracal.ErrNotFound)
	assert.ErrorContains(t, err, "from session "+giver.ID()+" to session "+peer.ID())
	assert.ErrorContains(t, err, "the source or the target session is not live on the Coordinator")
	assert.ErrorContains(t, err, "suspended")
}

// A narrowed spawn whose delegation is refused as delegation_endpoint_not_found
// (the parent ended between the start and the delegation) says so, as
// Delegate does, and the new session is retired.
func TestNarrowedSpawnWhoseParentIsNotLiveSaysWhy(t *testing.T) {
	st, c := newStack(t)
	parent, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	st.Inject(caracaltest.RouteDelegate, caracaltest.Fault{Status: http.StatusNotFound, Code: "delegation_endpoint_not_found", Times: 1})

	_, err = c.Spawn(parent.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{}, time.Minute)))
	var e *caracal.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "delegation_endpoint_not_found", e.Code)
	assert.ErrorIs(t, err, caracal.ErrNotFound)
	assert.ErrorContains(t, err, "the source or the target session is not live on the Coordinator")
	assert.Equal(t, 1, st.Count(caracaltest.RouteRetire), "the new session is retired")
}
