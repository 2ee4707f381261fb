package caracal_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

var errNotEncodable = errors.New("not encodable")

type refusesJSON struct{}

func (refusesJSON) MarshalJSON() ([]byte, error) { return nil, errNotEncodable }

// Metadata that cannot be encoded fails the Spawn before any call, and the
// encoder's error is kept: errors.Is finds what the caller's MarshalJSON
// returned.
func TestSpawnMetadataEncodingErrorIsKept(t *testing.T) {
	st, c := newStack(t)
	st.ResetRecord()
	_, err := c.Spawn(t.Context(), caracal.WithMetadata(map[string]any{"task": refusesJSON{}}))
	require.ErrorIs(t, err, caracal.ErrInvalidRequest)
	require.ErrorIs(t, err, errNotEncodable)
	assert.Contains(t, err.Error(), "WithMetadata")
	assert.Zero(t, st.Count(caracaltest.RouteStart), "nothing was started")
}
