package coordclient

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/apierr"
	"github.com/caracal-go/caracal/internal/retry"
	"github.com/caracal-go/caracal/internal/wire"
)

func TestStartRequest(t *testing.T) {
	h := newHarness(t, answer(201, sessionBody))
	s, err := h.c.Start(t.Context(), wire.StartSessionRequest{
		ApplicationID: "app-test", Labels: []string{"reader"}, TTLSeconds: 3600, ParentAuthority: "inherit",
	}, StartOptions{Traceparent: "00-5f1c2b3a4d5e6f708192a3b4c5d6e7f8-1a2b3c4d5e6f7081-01", Tracestate: "k=v"})
	require.NoError(t, err)
	assert.Equal(t, "S1", s.AgentSessionID)
	assert.False(t, s.Replayed)

	reqs := h.coord.requests()
	require.Len(t, reqs, 1)
	r := reqs[0]
	assert.Equal(t, "POST", r.Method)
	assert.Equal(t, "/zones/zone-test/agents", r.Path)
	assert.Equal(t, "Bearer tok-1", r.Header.Get("Authorization"))
	assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
	assert.Regexp(t, hex32, r.Header.Get("Idempotency-Key"))
	assert.Equal(t, "generated", r.Header.Get("Idempotency-Key-Kind"))
	assert.Equal(t, "00-5f1c2b3a4d5e6f708192a3b4c5d6e7f8-1a2b3c4d5e6f7081-01", r.Header.Get("Traceparent"))
	assert.Equal(t, "k=v", r.Header.Get("Tracestate"))
	assert.JSONEq(t, `{"application_id":"app-test","subject_session_id":"sid-1","labels":["reader"],"ttl_seconds":3600,"parent_authority":"inherit"}`, r.Body)
}

func TestStartGivenKeyAndSubject(t *testing.T) {
	h := newHarness(t, answer(201, strings.Replace(sessionBody, `"sid-1"`, `"rec-9"`, 1), "Idempotency-Replayed", "true"))
	s, err := h.c.Start(t.Context(), wire.StartSessionRequest{ApplicationID: "app-test", SubjectSessionID: "rec-9"},
		StartOptions{IdempotencyKey: "order-42"})
	require.NoError(t, err)
	assert.True(t, s.Replayed)
	r := h.coord.requests()[0]
	assert.Equal(t, "order-42", r.Header.Get("Idempotency-Key"))
	assert.Empty(t, r.Header.Values("Idempotency-Key-Kind"))
	assert.Empty(t, r.Header.Values("Traceparent"))
	assert.JSONEq(t, `{"application_id":"app-test","subject_session_id":"rec-9"}`, r.Body)
}

func TestStartRetriesTransientWithSameKeyAndBody(t *testing.T) {
	h := newHarness(t, answer(503, `{"error":"internal_error","requestId":"r1"}`), answer(504, ""), answer(201, sessionBody))
	_, err := h.c.Start(t.Context(), wire.StartSessionRequest{ApplicationID: "app-test"}, StartOptions{})
	require.NoError(t, err)
	reqs := h.coord.requests()
	require.Len(t, reqs, 3)
	for _, r := range reqs[1:] {
		assert.Equal(t, reqs[0].Header.Get("Idempotency-Key"), r.Header.Get("Idempotency-Key"))
		assert.Equal(t, reqs[0].Body, r.Body)
	}
	require.Len(t, *h.sleeps, 2)
	assert.GreaterOrEqual(t, (*h.sleeps)[0], 250*time.Millisecond)
	assert.Less(t, (*h.sleeps)[0], 350*time.Millisecond)
	assert.GreaterOrEqual(t, (*h.sleeps)[1], 500*time.Millisecond)
	assert.Less(t, (*h.sleeps)[1], 600*time.Millisecond)
}

func TestStartRetriesDroppedConnection(t *testing.T) {
	// net/http itself may resend a keyed request on a reused connection,
	// so only the outcome and the bound are asserted.
	h := newHarness(t, drop, drop, answer(201, sessionBody))
	_, err := h.c.Start(t.Context(), wire.StartSessionRequest{ApplicationID: "app-test"}, StartOptions{})
	require.NoError(t, err)
	assert.Len(t, h.coord.requests(), 3)

	h = newHarness(t, drop)
	_, err = h.c.Start(t.Context(), wire.StartSessionRequest{ApplicationID: "app-test"}, StartOptions{})
	assert.ErrorIs(t, err, apierr.ErrUnavailable)
	assert.LessOrEqual(t, len(*h.sleeps), StartRetries)
}

func TestStartGivesUpAfterTwoRetries(t *testing.T) {
	h := newHarness(t, answer(429, `{"error":"rate_limited"}`, "Retry-After", "4"))
	_, err := h.c.Start(t.Context(), wire.StartSessionRequest{ApplicationID: "app-test"}, StartOptions{})
	var e *apierr.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "rate_limited", e.Code)
	assert.ErrorIs(t, err, apierr.ErrRateLimited)
	assert.Len(t, h.coord.requests(), 1+StartRetries)
	require.Len(t, *h.sleeps, 2)
	for _, d := range *h.sleeps {
		assert.GreaterOrEqual(t, d, 4*time.Second, "Retry-After wins")
		assert.Less(t, d, 4*time.Second+retry.MaxJitter)
	}
}

func TestStartNotRetried(t *testing.T) {
	for _, a := range []func(http.ResponseWriter){
		answer(400, `{"error":"invalid_body","error_description":"Request body failed validation","requestId":"r"}`),
		answer(404, `{"error":"parent_not_found"}`),
		answer(409, `{"error":"idempotency_key_conflict","message":"…"}`),
		answer(429, `{"error":"session_limit_exceeded"}`),
		answer(429, `{"error":"session_depth_limit_exceeded"}`),
	} {
		h := newHarness(t, a)
		_, err := h.c.Start(t.Context(), wire.StartSessionRequest{ApplicationID: "app-test"}, StartOptions{})
		require.Error(t, err)
		want := 1
		if strings.Contains(err.Error(), " session_limit_exceeded") {
			want = 1 + StartRetries // a plain 429 is transient
		}
		assert.Len(t, h.coord.requests(), want, err.Error())
	}
}

func TestStartReceiptLimitFallsBackToNoKey(t *testing.T) {
	h := newHarness(t, answer(429, `{"error":"idempotency_receipt_limit_exceeded"}`), answer(201, sessionBody))
	s, err := h.c.Start(t.Context(), wire.StartSessionRequest{ApplicationID: "app-test"}, StartOptions{})
	require.NoError(t, err)
	assert.Equal(t, "S1", s.AgentSessionID)
	reqs := h.coord.requests()
	require.Len(t, reqs, 2)
	assert.NotEmpty(t, reqs[0].Header.Get("Idempotency-Key"))
	assert.Empty(t, reqs[1].Header.Values("Idempotency-Key"))
	assert.Empty(t, reqs[1].Header.Values("Idempotency-Key-Kind"))
	assert.Equal(t, reqs[0].Body, reqs[1].Body)
	assert.Empty(t, *h.sleeps, "nothing executed: no backoff needed")
}

func TestReceiptLimitWarnsOnce(t *testing.T) {
	h := newHarness(t, answer(429, `{"error":"idempotency_receipt_limit_exceeded"}`), answer(201, sessionBody),
		answer(429, `{"error":"idempotency_receipt_limit_exceeded"}`), answer(201, sessionBody))
	var logs strings.Builder
	h.c.cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for range 2 {
		_, err := h.c.Start(t.Context(), wire.StartSessionRequest{ApplicationID: "app-test"}, StartOptions{})
		require.NoError(t, err)
	}
	assert.Equal(t, 1, strings.Count(logs.String(), "level=WARN"), "past the limit every start is keyless: one warning")
	assert.Equal(t, 2, strings.Count(logs.String(), "receipt limit reached"))
}

func TestStartWithoutKeyIsNotRetried(t *testing.T) {
	h := newHarness(t, answer(429, `{"error":"idempotency_receipt_limit_exceeded"}`), answer(503, ""))
	_, err := h.c.Start(t.Context(), wire.StartSessionRequest{ApplicationID: "app-test"}, StartOptions{})
	assert.ErrorIs(t, err, apierr.ErrUnavailable)
	assert.Len(t, h.coord.requests(), 2, "a keyless resend could start a second session")
}

func TestStartCallerKeyIsNeverDropped(t *testing.T) {
	h := newHarness(t, answer(429, `{"error":"idempotency_receipt_limit_exceeded"}`))
	_, err := h.c.Start(t.Context(), wire.StartSessionRequest{ApplicationID: "app-test"}, StartOptions{IdempotencyKey: "mine"})
	var e *apierr.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "idempotency_receipt_limit_exceeded", e.Code)
	assert.False(t, e.Temporary())
	assert.Len(t, h.coord.requests(), 1)
}

func TestStart401RefreshesAndRepins(t *testing.T) {
	h := newHarness(t, answer(401, `{"error":"identity_revoked"}`), answer(201, strings.Replace(sessionBody, `"sid-1"`, `"sid-2"`, 1)))
	_, err := h.c.Start(t.Context(), wire.StartSessionRequest{ApplicationID: "app-test"}, StartOptions{})
	require.NoError(t, err)
	reqs := h.coord.requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, []string{"tok-1"}, h.tokens.invalidated)
	assert.Equal(t, "Bearer tok-2", reqs[1].Header.Get("Authorization"))
	assert.Equal(t, reqs[0].Header.Get("Idempotency-Key"), reqs[1].Header.Get("Idempotency-Key"))
	// A 401 stores no receipt: the new token's record replaces the revoked one.
	assert.Contains(t, reqs[0].Body, `"subject_session_id":"sid-1"`)
	assert.Contains(t, reqs[1].Body, `"subject_session_id":"sid-2"`)
	require.Len(t, *h.sleeps, 1)
	assert.LessOrEqual(t, (*h.sleeps)[0], retry.MaxRefreshPause)
}

func TestStartPinSurvivesRefreshAfterPossibleCommit(t *testing.T) {
	h := newHarness(t, answer(502, ""), answer(401, `{"error":"invalid_token"}`), answer(201, sessionBody))
	_, err := h.c.Start(t.Context(), wire.StartSessionRequest{ApplicationID: "app-test"}, StartOptions{})
	require.NoError(t, err)
	reqs := h.coord.requests()
	require.Len(t, reqs, 3)
	assert.Equal(t, "Bearer tok-2", reqs[2].Header.Get("Authorization"))
	for _, r := range reqs {
		assert.Contains(t, r.Body, `"subject_session_id":"sid-1"`, "the first attempt may have committed: keep the digest")
	}
}

func TestStartInvalidAnswers(t *testing.T) {
	for _, tc := range []struct {
		body string
		req  wire.StartSessionRequest
	}{
		{`{"status":"active"}`, wire.StartSessionRequest{ApplicationID: "a"}},
		{`{"agent_session_id":"S","lease_generation":0}`, wire.StartSessionRequest{ApplicationID: "a", Lifecycle: "service"}},
		{`not json`, wire.StartSessionRequest{ApplicationID: "a"}},
	} {
		h := newHarness(t, answer(201, tc.body))
		_, err := h.c.Start(t.Context(), tc.req, StartOptions{})
		assert.ErrorContains(t, err, "invalid response")
	}
}

func TestIdempotencyKeys(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		k := NewIdempotencyKey()
		require.Regexp(t, hex32, k)
		require.False(t, seen[k])
		seen[k] = true
	}
}
