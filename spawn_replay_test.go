package caracal_test

import (
	"context"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A spawn replayed under the caller's own idempotency key returns a session
// an earlier call started, which that call's handle may still hold: when
// its narrowing cannot be confirmed, the error is returned and the session
// is left alone, not retired from under that handle.
func TestReplayedSpawnUnderACallerKeyIsNotRetired(t *testing.T) {
	st, c := newStack(t)
	root, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	opts := []caracal.SpawnOption{caracal.WithIdempotencyKey("job-42"), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, 5*time.Minute))}
	first, err := c.Spawn(root.Context(), opts...)
	require.NoError(t, err)

	st.Inject("GET /zones/{zone}/delegations/inbound/{sid}", caracaltest.Fault{Status: 403, Code: "application_ownership_required", Times: 1})
	_, err = c.Spawn(root.Context(), opts...)
	require.Error(t, err)
	assert.Contains(t, err.Error(), first.ID())

	info, ok := st.SessionInfo(first.ID())
	require.True(t, ok)
	assert.Equal(t, "active", info.Status, "the first call's session is still running")
	require.NoError(t, first.Close(t.Context()))
}

// A spawn replayed under the caller's key returns the session the first
// call started, whose TTL runs from that first start: its ExpiresAt is the
// first one's, not a full TTL from the replay.
func TestReplayedSpawnKeepsTheFirstExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient()
		require.NoError(t, err)
		defer c.Close(context.Background())
		first, err := c.Spawn(t.Context(), caracal.WithIdempotencyKey("job-7"), caracal.WithTTL(time.Hour))
		require.NoError(t, err)
		require.True(t, first.ExpiresAt().Equal(time.Now().Add(time.Hour)), "expires at %v", first.ExpiresAt())

		time.Sleep(10 * time.Minute)
		again, err := c.Spawn(t.Context(), caracal.WithIdempotencyKey("job-7"), caracal.WithTTL(time.Hour))
		require.NoError(t, err)
		require.Equal(t, first.ID(), again.ID(), "the start was replayed")
		assert.True(t, again.ExpiresAt().Equal(first.ExpiresAt()), "expires at %v, not %v", again.ExpiresAt(), first.ExpiresAt())
	})
}

// A start replayed under a generated key (a retry after a lost answer)
// returns a session no one else holds: when its narrowing fails, it is
// retired rather than left running.
func TestReplayedSpawnUnderAGeneratedKeyWhoseNarrowingFailsIsRetired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		parents, err := st.NewClient()
		require.NoError(t, err)
		defer parents.Close(context.Background())
		root, err := parents.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
		require.NoError(t, err)

		lost := &lostAnswer{base: st.Transport()}
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: lost}))
		require.NoError(t, err)
		st.Inject(caracaltest.RouteDelegate, caracaltest.Fault{Status: http.StatusForbidden, Code: "application_ownership_required", Times: 1})
		_, err = c.Spawn(root.Context(), caracal.WithLabels("reader"),
			caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, 5*time.Minute)))
		require.Error(t, err)
		require.NotEmpty(t, lost.lost)
		require.Equal(t, 3, st.Count(caracaltest.RouteStart), "the parent's start, the child's, and its replay")

		require.NoError(t, c.Close(t.Context()))
		info, ok := st.SessionInfo(lost.lost)
		require.True(t, ok)
		assert.Equal(t, "terminated", info.Status, "the session nobody holds was retired")
	})
}

// A spawn replayed under the caller's key reuses the earlier narrowing only
// when it grants the scopes asked for: a replay that asks for other scopes
// gets an edge of its own, not the earlier one's authority.
func TestReplayedSpawnWithOtherScopesIsNarrowedAgain(t *testing.T) {
	st, c := newStack(t)
	root, err := c.Spawn(t.Context(), caracal.WithLabels("writer"))
	require.NoError(t, err)
	spawn := func(scopes ...string) *caracal.Session {
		s, err := c.Spawn(root.Context(), caracal.WithIdempotencyKey("job-11"), caracal.WithLabels("writer"),
			caracal.WithGrant(caracal.Grant.Narrow(scopes, "resource://tickets", caracal.Constraints{}, 5*time.Minute)))
		require.NoError(t, err)
		return s
	}
	a := spawn("tickets:read")
	b := spawn("tickets:read", "tickets:write")
	require.Equal(t, a.ID(), b.ID(), "the start was replayed")
	assert.NotEqual(t, a.Agent().DelegationID(), b.Agent().DelegationID())
	assert.Equal(t, 2, st.Count(caracaltest.RouteDelegate))
	_, err = caracal.MintUse(b.Context(), c, "resource://tickets", "tickets:write")
	require.NoError(t, err)
}

// A spawn replayed under the caller's key after the earlier narrowing's edge
// expired gets an edge of its own: the expired edge, still listed as active
// until the Coordinator sweeps it (once a second here), grants nothing.
func TestReplayedSpawnAfterTheEdgeExpiredIsNarrowedAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient()
		require.NoError(t, err)
		defer c.Close(context.Background())
		root, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
		require.NoError(t, err)
		spawn := func() *caracal.Session {
			s, err := c.Spawn(root.Context(), caracal.WithIdempotencyKey("job-12"), caracal.WithLabels("reader"),
				caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, 5*time.Minute)))
			require.NoError(t, err)
			return s
		}
		// Half-way between two sweeps, so that the edge expires and is
		// listed, still active, before the next one.
		time.Sleep(500 * time.Millisecond)
		first := spawn()
		time.Sleep(5*time.Minute + 200*time.Millisecond)
		again := spawn()
		require.Equal(t, first.ID(), again.ID(), "the start was replayed")
		assert.NotEqual(t, first.Agent().DelegationID(), again.Agent().DelegationID())
		assert.Equal(t, 2, st.Count(caracaltest.RouteDelegate))
		_, err = caracal.MintUse(again.Context(), c, "resource://tickets", "tickets:read")
		require.NoError(t, err)
	})
}

// A spawn replayed under the caller's key reuses only an edge from its own
// parent: one another session delegated to the child, with the very scopes
// asked for, is not taken as the earlier narrowing.
func TestReplayedSpawnDoesNotTakeAnotherSessionsEdge(t *testing.T) {
	st, c := newStack(t)
	root, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	other, err := c.Spawn(t.Context(), caracal.WithLabels("auditor"))
	require.NoError(t, err)
	spawn := func(scopes ...string) *caracal.Session {
		s, err := c.Spawn(root.Context(), caracal.WithIdempotencyKey("job-13"), caracal.WithLabels("reader"),
			caracal.WithGrant(caracal.Grant.Narrow(scopes, "resource://tickets", caracal.Constraints{}, 5*time.Minute)))
		require.NoError(t, err)
		return s
	}
	first := spawn("tickets:read")
	d, err := c.Delegate(other.Context(), first.ID(),
		caracal.Grant.Narrow([]string{"tickets:write"}, "resource://tickets", caracal.Constraints{}, 5*time.Minute))
	require.NoError(t, err)

	again := spawn("tickets:write")
	require.Equal(t, first.ID(), again.ID(), "the start was replayed")
	assert.NotEqual(t, d.ID, again.Agent().DelegationID())
	assert.NotEqual(t, first.Agent().DelegationID(), again.Agent().DelegationID())
	assert.Equal(t, 3, st.Count(caracaltest.RouteDelegate))
	info, ok := st.EdgeInfo(again.Agent().DelegationID())
	require.True(t, ok)
	assert.Equal(t, root.ID(), info.Source)
}
