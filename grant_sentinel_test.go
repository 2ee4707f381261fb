package caracal_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// Every grant refused before any call matches ErrInvalidGrant, as its doc
// says, also where a more precise sentinel names the reason; and a
// Grant.Narrow with no session that can parent the new one matches
// ErrNarrowNeedsParent, for a service under a task too.
func TestLocalGrantRefusalsMatchErrInvalidGrant(t *testing.T) {
	st, c := newStack(t)
	narrow := func(k caracal.Constraints) caracal.SpawnOption {
		return caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", k, time.Minute))
	}
	task, err := c.Spawn(t.Context())
	require.NoError(t, err)
	st.ResetRecord()

	_, err = c.Spawn(t.Context(), narrow(caracal.Constraints{}))
	assert.ErrorIs(t, err, caracal.ErrNarrowNeedsParent)
	assert.ErrorIs(t, err, caracal.ErrInvalidGrant)

	_, err = c.SpawnService(task.Context(), narrow(caracal.Constraints{}))
	assert.ErrorIs(t, err, caracal.ErrNarrowNeedsParent)
	assert.ErrorIs(t, err, caracal.ErrInvalidGrant)

	_, err = c.Spawn(task.Context(), narrow(caracal.Constraints{Budget: 5}))
	assert.ErrorIs(t, err, caracal.ErrBudgetUnsupported)
	assert.ErrorIs(t, err, caracal.ErrInvalidGrant)

	assert.Zero(t, st.Count(caracaltest.RouteStart), "refused before any call")
}
