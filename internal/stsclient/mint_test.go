package stsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/apierr"
)

func TestMint(t *testing.T) {
	sts := &fakeSTS{answer: func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":300}`,
			jwt(map[string]any{"sid": fmt.Sprint("m", n), "use": "gateway"}))
	}}
	c := newClient(t, sts)
	req := MintRequest{Resource: "resource://tickets", Scopes: []string{"tickets:write", "tickets:read", "tickets:read"},
		AgentSessionID: "S1", DelegationEdgeID: "E1", TTLSeconds: 120, ApprovalID: "A1"}
	a, err := c.Mint(t.Context(), req)
	require.NoError(t, err)
	assert.Equal(t, "gateway", a.Use)
	f := sts.lastForm()
	assert.Equal(t, "tickets:read tickets:write", f.Get("scope"))
	assert.Equal(t, []string{"resource://tickets"}, f["resource"])
	assert.Equal(t, "S1", f.Get("agent_session_id"))
	assert.Equal(t, "E1", f.Get("delegation_edge_id"))
	assert.Equal(t, "120", f.Get("ttl_seconds"))
	assert.Equal(t, "A1", f.Get("approval_id"))
	assert.Equal(t, secret, f.Get("client_secret"))

	b, err := c.Mint(t.Context(), req)
	require.NoError(t, err)
	assert.NotEqual(t, a.Value, b.Value, "mandates are never cached")
	assert.EqualValues(t, 2, sts.calls.Load())
}

func TestMintApprovalHold(t *testing.T) {
	sts := &fakeSTS{answer: func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("WWW-Authenticate", `Bearer error="interaction_required"`)
		w.WriteHeader(401)
		_, _ = io.WriteString(w, `{"error":"interaction_required","error_description":"Human approval required for this request",
 "approval_id":"ap-1","approval_type":"human_approval","state":"pending","tier":"high",
 "binding":"abcd","approval_expires_at":"2026-08-22T10:15:00Z","requestId":"rq-9"}`)
	}}
	c := newClient(t, sts)
	_, err := c.Mint(t.Context(), MintRequest{Resource: "resource://tickets", Scopes: []string{"tickets:delete"}, AgentSessionID: "S", DelegationEdgeID: "E"})
	var ar *apierr.ApprovalRequiredError
	require.ErrorAs(t, err, &ar)
	assert.Equal(t, "ap-1", ar.ApprovalID)
	assert.Equal(t, "resource://tickets", ar.Resource)
	assert.Equal(t, []string{"tickets:delete"}, ar.Scopes)
	assert.Equal(t, "pending", ar.State)
	assert.Equal(t, "high", ar.Tier)
	assert.Equal(t, "abcd", ar.Binding)
	assert.Equal(t, time.Date(2026, 8, 22, 10, 15, 0, 0, time.UTC), ar.ExpiresAt)
	assert.Equal(t, "rq-9", ar.Err.RequestID)
	assert.ErrorIs(t, err, apierr.ErrApprovalRequired)
	var e *apierr.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 401, e.StatusCode)
}

func TestWaitFor(t *testing.T) {
	for _, tc := range []struct{ in, want time.Duration }{
		{-time.Second, time.Second},
		{0, time.Second},
		{1500 * time.Millisecond, time.Second},
		{7 * time.Second, 7 * time.Second},
		{25 * time.Second, 25 * time.Second},
		{time.Hour, 25 * time.Second},
	} {
		assert.Equal(t, tc.want, waitFor(tc.in), "%s", tc.in)
	}
}

func TestWaitApproval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var waits []string
		var mu sync.Mutex
		sts := &fakeSTS{answer: func(w http.ResponseWriter, r *http.Request, n int64) {
			mu.Lock()
			waits = append(waits, r.URL.Query().Get("wait"))
			mu.Unlock()
			assert.Equal(t, "/approvals/ap%2F1", r.URL.EscapedPath())
			state := "pending"
			if n >= 3 {
				state = "approved"
			}
			_, _ = fmt.Fprintf(w, `{"id":"ap/1","state":%q,"expires_at":"2026-08-22T10:15:00Z"}`, state)
		}}
		// The fake answers at once, so the bubble's clock measures the
		// client's own spacing of the polls.
		c := New(Config{BaseURL: "http://sts.invalid", HTTPClient: inProcess(sts)})
		start := time.Now()
		st, err := c.WaitApproval(t.Context(), "ap/1")
		require.NoError(t, err)
		assert.Equal(t, "approved", st.State)
		assert.Equal(t, []string{"25", "25", "25"}, waits)
		assert.Equal(t, 2*minPollInterval, time.Since(start), "early pending answers are spaced, not a hot loop")

		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		mu.Lock()
		waits = nil
		mu.Unlock()
		sts.calls.Store(0)
		_, err = c.WaitApproval(ctx, "ap/1")
		require.NoError(t, err)
		assert.Equal(t, []string{"10", "9", "8"}, waits, "wait follows the caller's remaining time")
	})
}

// inProcess serves h without a network, so that inside a synctest bubble
// every timer of the client runs on the bubble's clock.
func inProcess(h http.Handler) *http.Client {
	return &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Result(), nil
	})}
}

func TestWaitApprovalUntilDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var polls atomic.Int64
		hc := &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
			polls.Add(1)
			wait, _ := time.ParseDuration(r.URL.Query().Get("wait") + "s")
			select { // the server holds the poll for the whole wait
			case <-time.After(wait):
			case <-r.Context().Done():
				return nil, r.Context().Err()
			}
			return jsonResponse(200, `{"id":"ap-1","state":"pending","expires_at":"2026-08-22T10:15:00Z"}`), nil
		})}
		c := New(Config{BaseURL: "http://sts.invalid", HTTPClient: hc})
		ctx, cancel := context.WithTimeout(t.Context(), 60500*time.Millisecond)
		defer cancel()
		start := time.Now()
		st, err := c.WaitApproval(ctx, "ap-1")
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, "pending", st.State, "the last status seen is reported")
		assert.Equal(t, 60500*time.Millisecond, time.Since(start))
		assert.EqualValues(t, 4, polls.Load()) // 25 s + 25 s + 10 s + (1 s cut short)
	})
}

func TestWaitApprovalUnderHTTPClientTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var waits []string
		hc := &http.Client{Timeout: 10 * time.Second, Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
			waits = append(waits, r.URL.Query().Get("wait"))
			wait, _ := time.ParseDuration(r.URL.Query().Get("wait") + "s")
			state := "approved"
			if len(waits) < 3 {
				select { // pending: the server holds the poll for the whole wait
				case <-time.After(wait):
				case <-r.Context().Done():
					return nil, r.Context().Err()
				}
				state = "pending"
			}
			return jsonResponse(200, `{"id":"ap-1","state":"`+state+`"}`), nil
		})}
		c := New(Config{BaseURL: "http://sts.invalid", HTTPClient: hc})
		st, err := c.WaitApproval(t.Context(), "ap-1")
		require.NoError(t, err, "a poll never outlasts the HTTP client's own timeout")
		assert.Equal(t, "approved", st.State)
		assert.Equal(t, []string{"5", "5", "5"}, waits)
	})
}

func TestWaitApprovalNotFound(t *testing.T) {
	sts := &fakeSTS{answer: func(w http.ResponseWriter, r *http.Request, n int64) {
		w.WriteHeader(404)
		_, _ = io.WriteString(w, `{"error":"resource_not_found","error_description":"approval not found"}`)
	}}
	_, err := newClient(t, sts).WaitApproval(t.Context(), "nope")
	var e *apierr.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "resource_not_found", e.Code)
	assert.Equal(t, "/approvals/nope", e.Path)
	assert.ErrorIs(t, err, apierr.ErrNotFound)
}

// A server (or a proxy) that answers "pending" at once instead of holding
// the poll must not turn the wait into a hot loop.
func TestWaitApprovalPacesPollsAnsweredAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var polls atomic.Int64
		hc := &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
			polls.Add(1)
			return jsonResponse(200, `{"id":"ap-1","state":"pending"}`), nil
		})}
		c := New(Config{BaseURL: "http://sts.invalid", HTTPClient: hc})
		// The deadline falls between two polls, so no timer ties with it.
		ctx, cancel := context.WithTimeout(t.Context(), 9500*time.Millisecond)
		defer cancel()
		_, err := c.WaitApproval(ctx, "ap-1")
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.EqualValues(t, 10, polls.Load(), "one poll a second: at 0 s, 1 s, … 9 s")
	})
}

// A hold whose body carries a field of an unexpected type is still a hold.
func TestMintApprovalHoldWithOddlyTypedField(t *testing.T) {
	sts := &fakeSTS{answer: func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(401)
		_, _ = io.WriteString(w, `{"error":"interaction_required","approval_id":"ap-1","state":"pending","tier":2,"requestId":"rq-9"}`)
	}}
	c := newClient(t, sts)
	_, err := c.Mint(t.Context(), MintRequest{Resource: "resource://tickets", Scopes: []string{"tickets:delete"}, AgentSessionID: "S", DelegationEdgeID: "E"})
	var ar *apierr.ApprovalRequiredError
	require.ErrorAs(t, err, &ar)
	assert.Equal(t, "ap-1", ar.ApprovalID)
	assert.Equal(t, "rq-9", ar.Err.RequestID)
	assert.ErrorIs(t, err, apierr.ErrApprovalRequired)
}

// A long wait outlives a brief STS outage: a transient failure is polled
// again after a backoff (Retry-After honoured), a lasting one ends the wait
// with its error, and a definite refusal is not retried.
func TestWaitApprovalThroughATransientFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var polls atomic.Int64
		answers := func(seq ...*http.Response) *http.Client {
			polls.Store(0)
			return &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
				n := polls.Add(1)
				if int(n) > len(seq) {
					return seq[len(seq)-1], nil
				}
				if seq[n-1] == nil {
					return nil, errors.New("connection reset")
				}
				return seq[n-1], nil
			})}
		}
		unavailable := func() *http.Response {
			r := jsonResponse(503, `{"error":"temporarily_unavailable"}`)
			r.Header.Set("Retry-After", "2")
			return r
		}
		approved := jsonResponse(200, `{"id":"ap-1","state":"approved","expires_at":"2026-08-22T10:15:00Z"}`)

		c := New(Config{BaseURL: "http://sts.invalid", HTTPClient: answers(unavailable(), nil, approved)})
		start := time.Now()
		st, err := c.WaitApproval(t.Context(), "ap-1")
		require.NoError(t, err)
		assert.Equal(t, "approved", st.State)
		assert.EqualValues(t, 3, polls.Load())
		assert.GreaterOrEqual(t, time.Since(start), 2*time.Second, "Retry-After was honoured")

		// The count is of failures in a row: an answer in between starts it
		// again.
		pending := jsonResponse(200, `{"id":"ap-1","state":"pending","expires_at":"2026-08-22T10:15:00Z"}`)
		c = New(Config{BaseURL: "http://sts.invalid", HTTPClient: answers(unavailable(), nil, unavailable(), pending,
			unavailable(), nil, unavailable(), jsonResponse(200, `{"id":"ap-1","state":"approved","expires_at":"2026-08-22T10:15:00Z"}`))})
		st, err = c.WaitApproval(t.Context(), "ap-1")
		require.NoError(t, err)
		assert.Equal(t, "approved", st.State)
		assert.EqualValues(t, 8, polls.Load())

		c = New(Config{BaseURL: "http://sts.invalid", HTTPClient: answers(unavailable())})
		_, err = c.WaitApproval(t.Context(), "ap-1")
		require.ErrorIs(t, err, apierr.ErrUnavailable)
		assert.EqualValues(t, 1+approvalRetries, polls.Load(), "a lasting outage ends the wait")

		c = New(Config{BaseURL: "http://sts.invalid", HTTPClient: answers(jsonResponse(404, `{"error":"not_found"}`))})
		_, err = c.WaitApproval(t.Context(), "ap-1")
		require.Error(t, err)
		assert.EqualValues(t, 1, polls.Load(), "a refusal is final")
	})
}

// A hold whose fields echo the request (a proxy, a faulty STS) must not
// carry the client secret into the error or its fields.
func TestMintApprovalHoldRedactsEchoedSecret(t *testing.T) {
	sts := &fakeSTS{answer: func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(401)
		echo := r.PostForm.Encode()
		b, _ := json.Marshal(map[string]string{"error": "interaction_required", "approval_id": "ap-1",
			"state": "pending " + echo, "tier": secret, "binding": echo, "requestId": "rq-9"})
		_, _ = w.Write(b)
	}}
	c := newClient(t, sts)
	_, err := c.Mint(t.Context(), MintRequest{Resource: "resource://tickets", Scopes: []string{"tickets:delete"}, AgentSessionID: "S", DelegationEdgeID: "E"})
	var ar *apierr.ApprovalRequiredError
	require.ErrorAs(t, err, &ar)
	assert.Equal(t, "ap-1", ar.ApprovalID)
	assert.NotContains(t, fmt.Sprintf("%v %+v %#v", err, err, *ar), secret)
	assert.Contains(t, ar.State, "client_secret=[redacted]")
}

// An approval id that echoes the client secret does not carry it out.
func TestMintApprovalHoldRedactsSecretInApprovalID(t *testing.T) {
	sts := &fakeSTS{answer: func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(401)
		b, _ := json.Marshal(map[string]string{"error": "interaction_required", "approval_id": "ap-" + secret, "state": "pending"})
		_, _ = w.Write(b)
	}}
	c := newClient(t, sts)
	_, err := c.Mint(t.Context(), MintRequest{Resource: "resource://tickets", Scopes: []string{"tickets:read"}, AgentSessionID: "S", DelegationEdgeID: "E"})
	var ar *apierr.ApprovalRequiredError
	require.ErrorAs(t, err, &ar)
	assert.Equal(t, "ap-[redacted]", ar.ApprovalID)
	assert.NotContains(t, err.Error(), secret)
}
