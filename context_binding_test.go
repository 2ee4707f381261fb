package caracal_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// NewContext with a nil agent hides the agent of the context it derives
// from: nothing is bound, so Headers refuses and a Spawn from it starts a
// root session.
func TestNewContextNilHidesTheAgent(t *testing.T) {
	st, c := newStack(t)
	parent, err := c.Spawn(t.Context())
	require.NoError(t, err)

	ctx := caracal.NewContext(parent.Context(), nil)
	_, ok := caracal.FromContext(ctx)
	assert.False(t, ok)
	_, err = c.Headers(ctx)
	assert.ErrorIs(t, err, caracal.ErrNoSession)
	child, err := c.Spawn(ctx)
	require.NoError(t, err)
	info, ok := st.SessionInfo(child.ID())
	require.True(t, ok)
	assert.Empty(t, info.ParentID, "a root session")
}

// WithParent refuses, before any call, a nil agent, WithoutParent given
// with it, and a context bound to another agent.
func TestWithParentRefusals(t *testing.T) {
	st, c := newStack(t)
	a, err := c.Spawn(t.Context())
	require.NoError(t, err)
	b, err := c.Spawn(t.Context())
	require.NoError(t, err)
	st.ResetRecord()

	for name, spawn := range map[string]func() error{
		"nil": func() error { _, err := c.Spawn(t.Context(), caracal.WithParent(nil)); return err },
		"without parent": func() error {
			_, err := c.Spawn(t.Context(), caracal.WithParent(b.Agent()), caracal.WithoutParent())
			return err
		},
		"another context": func() error { _, err := c.Spawn(a.Context(), caracal.WithParent(b.Agent())); return err },
	} {
		assert.ErrorIs(t, spawn(), caracal.ErrInvalidRequest, name)
	}
	assert.Zero(t, st.Count(caracaltest.RouteStart))
}
