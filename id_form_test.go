package caracal_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// An id passed in by the caller that does not have the form of the ids
// Caracal issues is refused before any call, as the Coordinator would refuse
// it (400 invalid_params), and reaches neither a request nor the error text
// as it is; AcceptDelegation does not bind it.
func TestMalformedIDsAreRefusedBeforeAnyCall(t *testing.T) {
	st, c := newStack(t)
	root, err := c.Spawn(t.Context())
	require.NoError(t, err)
	other, err := c.Spawn(t.Context())
	require.NoError(t, err)
	bad := "x\ny\x1b[31m" + strings.Repeat("z", 3000)
	calls := map[string]func() error{
		"RevokeDelegation": func() error { return c.RevokeDelegation(t.Context(), bad) },
		"Resume":           func() error { _, err := c.Resume(t.Context(), bad); return err },
		"AttachService":    func() error { _, err := c.AttachService(t.Context(), bad); return err },
		"Delegate": func() error {
			_, err := c.Delegate(root.Context(), bad, caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Minute))
			return err
		},
		"AcceptDelegation": func() error { _, err := c.AcceptDelegation(other.Context(), bad); return err },
		"AcceptDelegation unchecked": func() error {
			_, err := c.AcceptDelegation(other.Context(), bad, caracal.SkipInboundCheck())
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			before := len(st.Requests())
			err := call()
			require.ErrorIs(t, err, caracal.ErrInvalidRequest)
			assert.Len(t, st.Requests(), before, "nothing was sent")
			assert.NotContains(t, err.Error(), "\n")
			assert.NotContains(t, err.Error(), "\x1b")
			assert.Less(t, len(err.Error()), 512, "the message is bounded")
		})
	}
}

// A delegation id left empty is a delegation refused locally: ErrInvalidGrant,
// before any call.
func TestEmptyDelegationIDIsAnInvalidGrant(t *testing.T) {
	st, c := newStack(t)
	peer, err := c.Spawn(t.Context())
	require.NoError(t, err)
	before := len(st.Requests())
	require.ErrorIs(t, c.RevokeDelegation(t.Context(), ""), caracal.ErrInvalidGrant)
	_, err = c.AcceptDelegation(peer.Context(), "")
	require.ErrorIs(t, err, caracal.ErrInvalidGrant)
	_, err = c.AcceptDelegation(peer.Context(), "", caracal.SkipInboundCheck())
	require.ErrorIs(t, err, caracal.ErrInvalidGrant)
	assert.Len(t, st.Requests(), before, "nothing was sent")
}
