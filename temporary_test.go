package caracal_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// Error.Temporary says whether the same call may succeed later: not for a
// start refused for its parent's depth, which no retry changes (the SDK
// itself does not retry it), nor for the receipt limit.
func TestTemporaryOfSessionLimits(t *testing.T) {
	for code, temporary := range map[string]bool{
		"rate_limited":                       true,
		"session_children_limit_exceeded":    true,
		"session_depth_limit_exceeded":       false,
		"idempotency_receipt_limit_exceeded": false,
	} {
		t.Run(code, func(t *testing.T) {
			st, c := newStack(t)
			st.Inject(caracaltest.RouteStart, caracaltest.Fault{Status: 429, Code: code})
			_, err := c.Spawn(t.Context())
			var e *caracal.Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, code, e.Code)
			assert.ErrorIs(t, err, caracal.ErrRateLimited)
			assert.Equal(t, temporary, e.Temporary())
		})
	}
}

// A Coordinator answer of 500 is a passing outage: it matches
// ErrUnavailable and Temporary says so. 415 is a refusal of the request's
// shape, which no retry changes.
func TestTemporaryOfServerStatuses(t *testing.T) {
	for _, tc := range []struct {
		status    int
		code      string
		sentinel  error
		temporary bool
	}{
		{500, "internal_error", caracal.ErrUnavailable, true},
		{415, "invalid_request", caracal.ErrInvalidRequest, false},
	} {
		t.Run(tc.code, func(t *testing.T) {
			st, c := newStack(t)
			st.Inject(caracaltest.RouteStart, caracaltest.Fault{Status: tc.status, Code: tc.code})
			_, err := c.Spawn(t.Context())
			var e *caracal.Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tc.status, e.StatusCode)
			assert.ErrorIs(t, err, tc.sentinel)
			assert.Equal(t, tc.temporary, e.Temporary())
		})
	}
}
