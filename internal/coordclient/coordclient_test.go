package coordclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/apierr"
	"github.com/caracal-go/caracal/internal/stsclient"
	"github.com/caracal-go/caracal/internal/wire"
)

// tokens is a TokenSource handing out tok-N (sid-N), a new one after each
// Invalidate of the current one.
type tokens struct {
	mu          sync.Mutex
	n           int
	invalidated []string
	err         error
}

func (s *tokens) Lifecycle(context.Context) (stsclient.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return stsclient.Token{}, s.err
	}
	if s.n == 0 {
		s.n = 1
	}
	return stsclient.Token{Value: fmt.Sprint("tok-", s.n), SID: fmt.Sprint("sid-", s.n), Use: "session"}, nil
}

func (s *tokens) Invalidate(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.invalidated = append(s.invalidated, v)
	if v == fmt.Sprint("tok-", s.n) {
		s.n++
	}
}

// seen is one request as the fake Coordinator received it.
type seen struct {
	Method, Path string
	Header       http.Header
	Body         string
}

type coord struct {
	mu   sync.Mutex
	reqs []seen
	// answers are served in order; the last one repeats.
	answers []func(w http.ResponseWriter)
}

func (c *coord) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.reqs = append(c.reqs, seen{r.Method, r.URL.EscapedPath(), r.Header.Clone(), string(b)})
	i := min(len(c.reqs)-1, len(c.answers)-1)
	c.mu.Unlock()
	c.answers[i](w)
}

func (c *coord) requests() []seen {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]seen(nil), c.reqs...)
}

func answer(status int, body string, hdr ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		if body != "" {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// drop closes the connection without an answer.
func drop(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

const sessionBody = `{"agent_session_id":"S1","zone_id":"zone-test","application_id":"app-test","parent_id":null,
"subject_authority_record_id":"sid-1","lifecycle":"task","labels":["reader"],"status":"active","depth":0,
"ttl_seconds":3600,"started_at":"2026-08-22T10:00:01.120Z","last_heartbeat_at":null,"heartbeat_deadline_at":null,
"lease_generation":0,"delegation_edge_id":null}`

type harness struct {
	c      *Client
	coord  *coord
	tokens *tokens
	sleeps *[]time.Duration
}

func newHarness(t *testing.T, answers ...func(w http.ResponseWriter)) harness {
	t.Helper()
	co := &coord{answers: answers}
	srv := httptest.NewServer(co)
	t.Cleanup(srv.Close)
	ts := &tokens{}
	var mu sync.Mutex
	sleeps := &[]time.Duration{}
	c := New(Config{
		BaseURL:    srv.URL + "/",
		ZoneID:     "zone-test",
		HTTPClient: srv.Client(),
		Tokens:     ts,
		Sleep: func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			*sleeps = append(*sleeps, d)
			mu.Unlock()
			return ctx.Err()
		},
	})
	return harness{c, co, ts, sleeps}
}

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestTokenFailureIsNotRetried(t *testing.T) {
	h := newHarness(t, answer(201, sessionBody))
	sentinel := errors.New("sts down")
	h.tokens.err = sentinel
	_, err := h.c.Start(t.Context(), wire.StartSessionRequest{ApplicationID: "app-test"}, StartOptions{})
	assert.ErrorIs(t, err, sentinel)
	assert.Empty(t, h.coord.requests())
}

func TestRetire(t *testing.T) {
	h := newHarness(t, answer(204, ""))
	require.NoError(t, h.c.Retire(t.Context(), "S/1", 0))
	require.NoError(t, h.c.Retire(t.Context(), "S2", 3))
	reqs := h.coord.requests()
	assert.Equal(t, "DELETE", reqs[0].Method)
	assert.Equal(t, "/zones/zone-test/agents/S%2F1", reqs[0].Path)
	assert.Empty(t, reqs[0].Body)
	assert.Empty(t, reqs[0].Header.Values("Content-Type"), "no JSON content type without a body")
	assert.JSONEq(t, `{"lease_generation":3}`, reqs[1].Body)
	assert.Equal(t, "application/json", reqs[1].Header.Get("Content-Type"))
}

func TestRetireGoneIsSuccess(t *testing.T) {
	for _, a := range []func(http.ResponseWriter){
		answer(404, `{"error":"session_not_found"}`),
		answer(409, `{"error":"session_not_live"}`),
	} {
		require.NoError(t, newHarness(t, a).c.Retire(t.Context(), "S", 0))
	}
	for _, a := range []func(http.ResponseWriter){
		answer(409, `{"error":"session_lease_fenced"}`),
		answer(404, `{"message":"Route DELETE:/x not found","error":"Not Found","statusCode":404}`),
		answer(403, `{"error":"application_ownership_required"}`),
		answer(503, ``),
	} {
		h := newHarness(t, a)
		assert.Error(t, h.c.Retire(t.Context(), "S", 2))
		assert.Len(t, h.coord.requests(), 1, "retire is one attempt")
	}
}

func TestRetire401RetriesOnce(t *testing.T) {
	h := newHarness(t, answer(401, `{"error":"identity_revoked"}`))
	err := h.c.Retire(t.Context(), "S", 0)
	assert.ErrorIs(t, err, apierr.ErrUnauthorized)
	reqs := h.coord.requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "Bearer tok-1", reqs[0].Header.Get("Authorization"))
	assert.Equal(t, "Bearer tok-2", reqs[1].Header.Get("Authorization"))
}

// staticTokens is a source of one pre-minted token, as in bootstrap-token
// mode.
type staticTokens struct{ tokens }

func (*staticTokens) Static() bool { return true }

func TestStatic401IsNotResent(t *testing.T) {
	h := newHarness(t, answer(401, `{"error":"identity_revoked"}`))
	h.c.cfg.Tokens = &staticTokens{}
	err := h.c.Retire(t.Context(), "S", 0)
	assert.ErrorIs(t, err, apierr.ErrUnauthorized)
	assert.Len(t, h.coord.requests(), 1, "the same token would meet the same 401")
	assert.Empty(t, *h.sleeps, "no pause before giving up")
}

func TestRefreshPauseCutShortKeeps401(t *testing.T) {
	h := newHarness(t, answer(401, `{"error":"identity_revoked"}`))
	stop := errors.New("caller gave up")
	h.c.cfg.Sleep = func(context.Context, time.Duration) error { return stop }
	err := h.c.Retire(t.Context(), "S", 0)
	assert.ErrorIs(t, err, stop)
	assert.ErrorIs(t, err, apierr.ErrUnauthorized, "the answer that was not retried is reported")
	assert.Len(t, h.coord.requests(), 1)
}

func TestHeartbeatAndLease(t *testing.T) {
	h := newHarness(t,
		answer(200, `{"agent":{"id":"S","status":"active","heartbeat_deadline_at":"2026-08-22T10:02:41.000Z","lease_generation":2},"service":null,"active_invocations":0}`),
		answer(200, `{"status":"active","heartbeat_deadline_at":"2026-08-22T10:05:00.000Z","lease_generation":"3"}`),
		answer(503, `{"error":"internal_error"}`),
	)
	hb, err := h.c.Heartbeat(t.Context(), "S", 2)
	require.NoError(t, err)
	assert.EqualValues(t, 2, hb.Agent.LeaseGeneration)
	l, _, err := h.c.Lease(t.Context(), "S")
	require.NoError(t, err)
	assert.EqualValues(t, 3, l.LeaseGeneration)
	_, err = h.c.Heartbeat(t.Context(), "S", 3)
	assert.ErrorIs(t, err, apierr.ErrUnavailable)

	reqs := h.coord.requests()
	require.Len(t, reqs, 3, "heartbeats are not retried on 5xx")
	assert.Equal(t, "/zones/zone-test/agents/S/heartbeat", reqs[0].Path)
	assert.JSONEq(t, `{"status":"healthy","lease_generation":2}`, reqs[0].Body)
	assert.Equal(t, "/zones/zone-test/agents/S/lease", reqs[1].Path)
	assert.Empty(t, reqs[1].Body)
	assert.Empty(t, reqs[1].Header.Values("Content-Type"))
}

func TestDelegate(t *testing.T) {
	created := `{"delegation_edge_id":"E1","scopes":["tickets:read"],"expires_at":"2026-08-22T10:10:02.400Z","status":"active","constraints_json":{"ttl_seconds":600}}`
	h := newHarness(t, answer(502, ""), answer(201, created))
	req := wire.CreateDelegationRequest{SourceSessionID: "S1", TargetSessionID: "S2", IssuerApplicationID: "app",
		ReceiverApplicationID: "app", Scopes: []string{"tickets:read"}, ResourceID: "resource://tickets", TTLSeconds: 600}
	d, err := h.c.Delegate(t.Context(), req, "k1")
	require.NoError(t, err)
	assert.Equal(t, "E1", d.DelegationEdgeID)
	assert.Equal(t, 600, d.ConstraintsJSON.TTLSeconds)
	reqs := h.coord.requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "k1", reqs[1].Header.Get("Idempotency-Key"))
	assert.Empty(t, reqs[1].Header.Values("Idempotency-Key-Kind"))
	assert.JSONEq(t, `{"source_session_id":"S1","target_session_id":"S2","issuer_application_id":"app","receiver_application_id":"app",
		"resource_id":"resource://tickets","scopes":["tickets:read"],"ttl_seconds":600}`, reqs[1].Body)

	h = newHarness(t, answer(502, ""), answer(201, created))
	_, err = h.c.Delegate(t.Context(), req, "")
	assert.ErrorIs(t, err, apierr.ErrUnavailable)
	require.Len(t, h.coord.requests(), 1, "no key: no retry")
	assert.Empty(t, h.coord.requests()[0].Header.Values("Idempotency-Key"))

	h = newHarness(t, answer(503, ""))
	_, err = h.c.Delegate(t.Context(), req, "k2")
	assert.Error(t, err)
	assert.Len(t, h.coord.requests(), 1+DelegateRetries)

	h = newHarness(t, answer(201, `{"scopes":[]}`))
	_, err = h.c.Delegate(t.Context(), wire.CreateDelegationRequest{}, "")
	assert.ErrorContains(t, err, "no delegation_edge_id")
	assert.Contains(t, h.coord.requests()[0].Body, `"scopes":[]`)
}

func TestRevokeAndInbound(t *testing.T) {
	h := newHarness(t,
		answer(200, `{"revoked_edges":2,"affected_sessions":1,"terminated_sessions":1}`),
		answer(503, ""),
		answer(200, `{"id":"E:1","status":"active"}`),
	)
	r, err := h.c.RevokeDelegation(t.Context(), "E1")
	require.NoError(t, err)
	assert.Equal(t, 2, r.RevokedEdges)
	st, err := h.c.InboundEdge(t.Context(), "S 2", "E:1")
	require.NoError(t, err)
	assert.Equal(t, "active", st.Status)
	reqs := h.coord.requests()
	require.Len(t, reqs, 3, "the read was retried once")
	assert.Equal(t, "PATCH", reqs[0].Method)
	assert.Equal(t, "/zones/zone-test/delegations/E1/revoke", reqs[0].Path)
	assert.Empty(t, reqs[0].Header.Values("Content-Type"))
	assert.Equal(t, "GET", reqs[2].Method)
	assert.Equal(t, "/zones/zone-test/delegations/inbound/S%202/E:1", reqs[2].Path)
}

func TestErrorFields(t *testing.T) {
	h := newHarness(t,
		answer(400, `{"error":"idempotency_key_invalid","message":"bad key","request_id":"snake-id"}`),
		answer(404, `{"error":"delegation_not_found","requestId":"camel-id"}`),
	)
	_, err := h.c.Start(t.Context(), wire.StartSessionRequest{ApplicationID: "a"}, StartOptions{IdempotencyKey: " x"})
	var e *apierr.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, apierr.Error{Service: "coordinator", Method: "POST", Path: "/zones/zone-test/agents", StatusCode: 400,
		Code: "idempotency_key_invalid", Description: "bad key", RequestID: "snake-id"}, *e)
	_, err = h.c.RevokeDelegation(t.Context(), "E")
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "camel-id", e.RequestID)
	assert.ErrorIs(t, err, apierr.ErrNotFound)
	assert.NotContains(t, err.Error(), "tok-")
}

// rtFunc is an http.RoundTripper from a function.
type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestPerCallTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var sent []time.Time
		hc := &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			sent = append(sent, time.Now())
			mu.Unlock()
			<-r.Context().Done() // never answers
			return nil, r.Context().Err()
		})}
		c := New(Config{BaseURL: "http://coord.invalid", ZoneID: "z", HTTPClient: hc, Tokens: &tokens{}})
		start := time.Now()
		err := c.Retire(t.Context(), "S", 0)
		assert.ErrorIs(t, err, apierr.ErrUnavailable)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, Timeout, time.Since(start))

		// Start: each attempt gets its own 10 s, with the backoff between.
		sent = nil
		start = time.Now()
		_, err = c.Start(t.Context(), wire.StartSessionRequest{ApplicationID: "a"}, StartOptions{})
		assert.ErrorIs(t, err, apierr.ErrUnavailable)
		require.Len(t, sent, 3)
		elapsed := time.Since(start)
		assert.GreaterOrEqual(t, elapsed, 3*Timeout+750*time.Millisecond)
		assert.Less(t, elapsed, 3*Timeout+950*time.Millisecond)

		// A shorter caller deadline wins and is not retried.
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		sent = nil
		start = time.Now()
		_, err = c.Start(ctx, wire.StartSessionRequest{ApplicationID: "a"}, StartOptions{})
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, time.Second, time.Since(start))
		assert.Len(t, sent, 1)
	})
}

func TestBackoffStopsWithCallerContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hc := &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 503, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(""))}, nil
		})}
		c := New(Config{BaseURL: "http://coord.invalid", ZoneID: "z", HTTPClient: hc, Tokens: &tokens{}})
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_, err := c.Start(ctx, wire.StartSessionRequest{ApplicationID: "a"}, StartOptions{})
		assert.ErrorIs(t, err, apierr.ErrUnavailable)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "not retried")
	})
}

func TestBackoffPastDeadlineFailsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls int
		hc := &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
			calls++
			return &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"4"}},
				Body: io.NopCloser(strings.NewReader(`{"error":"rate_limited"}`))}, nil
		})}
		c := New(Config{BaseURL: "http://coord.invalid", ZoneID: "z", HTTPClient: hc, Tokens: &tokens{}})
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.Start(ctx, wire.StartSessionRequest{ApplicationID: "a"}, StartOptions{})
		assert.ErrorIs(t, err, apierr.ErrRateLimited)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Zero(t, time.Since(start), "waiting 2 s for a retry due in 4 s only burns the caller's time")
		assert.Equal(t, 1, calls)
	})
}

func TestInboundEdges(t *testing.T) {
	// The listing returns raw rows: a bigint column may come as a JSON
	// string, as lease_generation does on the read routes (PROTOCOL §4.10).
	h := newHarness(t, answer(200, `{"items":[{"id":"E2","source_session_id":"P","target_session_id":"S","status":"active","scopes":["a"],"edge_version":"3"},
		{"id":"E1","status":"revoked","edge_version":1}],"next_cursor":null}`))
	edges, err := h.c.InboundEdges(t.Context(), "S")
	require.NoError(t, err)
	require.Len(t, edges, 2)
	assert.Equal(t, "E2", edges[0].DelegationEdgeID)
	assert.Equal(t, "P", edges[0].SourceSessionID)
	assert.Equal(t, "revoked", edges[1].Status)
	assert.EqualValues(t, 3, edges[0].EdgeVersion)
	assert.EqualValues(t, 1, edges[1].EdgeVersion)
	r := h.coord.requests()[0]
	assert.Equal(t, "GET", r.Method)
	assert.Equal(t, "/zones/zone-test/delegations/inbound/S", r.Path)
}

// A body field of an unexpected type (zod reports an array element's
// index as a number) does not cost the answer its code and request id.
func TestErrorFieldsSurviveAnOddlyTypedField(t *testing.T) {
	h := newHarness(t, answer(400, `{"error":"invalid_body","error_description":"Request body failed validation","requestId":"rq-7",
"details":"see the proxy log"}`))
	_, err := h.c.Delegate(t.Context(), wire.CreateDelegationRequest{}, "")
	var e *apierr.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 400, e.StatusCode)
	assert.Equal(t, "invalid_body", e.Code)
	assert.Equal(t, "Request body failed validation", e.Description)
	assert.Equal(t, "rq-7", e.RequestID)
	assert.ErrorIs(t, err, apierr.ErrInvalidRequest)
}

// cutOff answers status with a body that ends early: the declared length
// is never sent and the connection closes.
func cutOff(status int, partial string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Length", "4096")
		w.Header().Set("X-Request-Id", "hdr-id")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, partial)
		w.(http.Flusher).Flush()
		drop(w)
	}
}

// A refusal whose body is cut off is still a refusal: it keeps its status
// and request id, and is not retried as if nothing had answered.
func TestErrorWithCutOffBody(t *testing.T) {
	h := newHarness(t, cutOff(409, `{"error":"session_lease_fenced"`))
	_, err := h.c.Heartbeat(t.Context(), "S", 1)
	var e *apierr.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 409, e.StatusCode)
	assert.Equal(t, "hdr-id", e.RequestID)
	assert.ErrorIs(t, err, apierr.ErrConflict)
	assert.NotErrorIs(t, err, apierr.ErrUnavailable)

	h = newHarness(t, cutOff(404, `{"error":"parent_not_found"`))
	_, err = h.c.Start(t.Context(), wire.StartSessionRequest{ApplicationID: "a"}, StartOptions{})
	assert.ErrorIs(t, err, apierr.ErrNotFound)
	assert.Len(t, h.coord.requests(), 1, "a 404 is not retried")
}

// An id that is a dot segment would change which route a request reaches
// once a server or proxy resolves the path: it is refused before any call.
func TestDotSegmentIDIsRefused(t *testing.T) {
	h := newHarness(t, answer(200, `{"id":"E.","status":"active"}`))
	for _, id := range []string{".", "..", ""} {
		_, err := h.c.InboundEdge(t.Context(), id, "E")
		require.ErrorIs(t, err, apierr.ErrInvalidRequest, "session id %q", id)
		_, err = h.c.InboundEdge(t.Context(), "S", id)
		require.ErrorIs(t, err, apierr.ErrInvalidRequest, "edge id %q", id)
		require.ErrorIs(t, h.c.Retire(t.Context(), id, 0), apierr.ErrInvalidRequest)
		_, err = h.c.RevokeDelegation(t.Context(), id)
		require.ErrorIs(t, err, apierr.ErrInvalidRequest)
	}
	assert.Empty(t, h.coord.requests())
	_, err := h.c.InboundEdge(t.Context(), "..S", "E.")
	require.NoError(t, err, "dots inside an id are fine")
}
