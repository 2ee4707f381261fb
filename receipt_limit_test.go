package caracal_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// fillReceipts starts and retires n sessions under generated keys, leaving n
// live receipts in the application's scope.
func fillReceipts(t *testing.T, c *caracal.Client, n int) {
	t.Helper()
	for range n {
		s, err := c.Spawn(t.Context())
		require.NoError(t, err)
		require.NoError(t, s.Close(t.Context()))
	}
}

// A keyed start that may have executed (a 5xx, or no answer) can still
// commit; if the receipt limit refuses its retry, sending the start again
// without the key could start a second session next to it.
func TestReceiptLimitAfterUnsureStartKeepsTheKey(t *testing.T) {
	st, c := newStack(t, caracaltest.WithLimits(caracaltest.Limits{ReceiptsPerScope: 100}))
	fillReceipts(t, c, 100)
	st.ResetRecord()
	st.Inject(caracaltest.RouteStart, caracaltest.Fault{Status: 503, Times: 1})

	_, err := c.Spawn(t.Context())
	var e *caracal.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "idempotency_receipt_limit_exceeded", e.Code)

	// Close waits for the retire of what the given-up start may have started.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, c.Close(ctx))
	starts := startsOf(st)
	require.GreaterOrEqual(t, len(starts), 2)
	key := starts[0].Header.Get("Idempotency-Key")
	require.NotEmpty(t, key)
	for i, r := range starts {
		assert.Equal(t, key, r.Header.Get("Idempotency-Key"), "start %d (status %d)", i, r.Status)
		assert.NotEqual(t, 201, r.Status, "start %d", i)
	}
}

// The same holds for Delegate: a keyless create after a keyed one that may
// have executed could leave the receiver two edges.
func TestReceiptLimitAfterUnsureDelegateKeepsTheKey(t *testing.T) {
	st, c := newStack(t, caracaltest.WithLimits(caracaltest.Limits{ReceiptsPerScope: 100}))
	root, err := c.Spawn(t.Context())
	require.NoError(t, err)
	peer, err := c.Spawn(root.Context(), caracal.WithGrant(caracal.Grant.None()))
	require.NoError(t, err)
	grant := caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Minute)
	for range 100 {
		_, err := c.Delegate(root.Context(), peer.ID(), grant)
		require.NoError(t, err)
	}

	// Past the limit with no doubt, the receipt limit does not stop Delegate.
	st.ResetRecord()
	_, err = c.Delegate(root.Context(), peer.ID(), grant)
	require.NoError(t, err)
	creates := delegationsOf(st)
	require.Len(t, creates, 2)
	assert.Equal(t, 429, creates[0].Status)
	assert.Equal(t, 201, creates[1].Status)
	assert.Empty(t, creates[1].Header.Values("Idempotency-Key"))

	st.ResetRecord()
	st.Inject(caracaltest.RouteDelegate, caracaltest.Fault{Status: 503, Times: 1})
	_, err = c.Delegate(root.Context(), peer.ID(), grant)
	var e *caracal.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "idempotency_receipt_limit_exceeded", e.Code)
	creates = delegationsOf(st)
	require.Len(t, creates, 2)
	for i, r := range creates {
		assert.Equal(t, creates[0].Header.Get("Idempotency-Key"), r.Header.Get("Idempotency-Key"), "create %d (status %d)", i, r.Status)
		assert.NotEmpty(t, r.Header.Get("Idempotency-Key"), "create %d", i)
	}
}

func delegationsOf(st *caracaltest.Stack) []caracaltest.Request {
	var out []caracaltest.Request
	for _, r := range st.Requests() {
		if r.Pattern == caracaltest.RouteDelegate {
			out = append(out, r)
		}
	}
	return out
}
