package coordclient

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/apierr"
)

// A request id from the response header is bounded like one from the body.
func TestHeaderRequestIDIsBounded(t *testing.T) {
	h := newHarness(t, answer(403, "", "X-Request-Id", strings.Repeat("r", 64<<10)))
	err := h.c.Retire(t.Context(), "S", 0)
	var e *apierr.Error
	require.ErrorAs(t, err, &e)
	assert.True(t, strings.HasPrefix(e.RequestID, "rrrr"))
	assert.Less(t, len(err.Error()), 2048)
}
