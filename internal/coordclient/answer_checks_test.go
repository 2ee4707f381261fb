package coordclient

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/apierr"
	"github.com/caracal-go/caracal/internal/wire"
)

// A lease answer without a generation of at least 1 attaches to nothing:
// heartbeats sent with generation 0 would be fenced.
func TestLeaseWithoutGenerationIsInvalid(t *testing.T) {
	for _, body := range []string{
		`{"status":"active","heartbeat_deadline_at":"2026-08-22T10:05:00.000Z","lease_generation":0}`,
		`{"status":"active","heartbeat_deadline_at":"2026-08-22T10:05:00.000Z"}`,
	} {
		h := newHarness(t, answer(200, body))
		_, _, err := h.c.Lease(t.Context(), "S")
		assert.ErrorIs(t, err, apierr.ErrUnavailable, body)
		assert.ErrorContains(t, err, "no lease generation", body)
	}
}

// What arrived of a cut-off refusal body is not reported: it may end in
// part of an echoed token that no redaction recognises.
func TestCutOffBodyTextIsDropped(t *testing.T) {
	h := newHarness(t, cutOff(409, `{"error":"session_lease_fenced","echo":"Authorization: Bearer tok-`))
	_, err := h.c.Heartbeat(t.Context(), "S", 1)
	var e *apierr.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 409, e.StatusCode)
	assert.Empty(t, e.Description)
	assert.NotContains(t, err.Error(), "Bearer")
}

// A keyed delegation create answered 500 may have committed: when the
// Coordinator then refuses the key for the receipt limit, no keyless
// create follows, which could add a second edge beside the first.
func TestDelegateAfterPossibleCommitIsNotSentWithoutKey(t *testing.T) {
	h := newHarness(t,
		answer(500, `{"error":"internal_error"}`),
		answer(429, `{"error":"idempotency_receipt_limit_exceeded"}`),
		answer(201, `{"delegation_edge_id":"E1","scopes":[],"status":"active"}`),
	)
	req := wire.CreateDelegationRequest{SourceSessionID: "S1", TargetSessionID: "S2", IssuerApplicationID: "app", ReceiverApplicationID: "app"}
	_, err := h.c.Delegate(t.Context(), req, "k1")
	assert.ErrorIs(t, err, apierr.ErrRateLimited)
	reqs := h.coord.requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "k1", reqs[1].Header.Get(wire.HeaderIdempotencyKey))
}
