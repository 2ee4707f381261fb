package caracal_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// WithLabels copies the labels it is given, as the other options copy their
// slices: an option built once and reused is not changed by what its
// caller does to the slice afterwards.
func TestWithLabelsCopiesItsSlice(t *testing.T) {
	st, c := newStack(t)
	labels := []string{"reader"}
	opt := caracal.WithLabels(labels...)
	labels[0] = "admin"

	s, err := c.Spawn(t.Context(), opt)
	require.NoError(t, err)
	assert.Equal(t, []string{"reader"}, s.Labels())
	info, ok := st.SessionInfo(s.ID())
	require.True(t, ok)
	assert.Equal(t, []string{"reader"}, info.Labels)
}
