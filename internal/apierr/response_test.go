package apierr

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func resp(status int, hdr ...string) *http.Response {
	r := &http.Response{StatusCode: status, Header: http.Header{}}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	return r
}

func TestFromResponse(t *testing.T) {
	e, eb := FromResponse("sts", "POST", "/oauth/2/token", resp(403, "X-Request-Id", "hdr"),
		[]byte(`{"error":"access_denied","error_description":"policy denied (no_rule_matched)","requestId":"body"}`))
	assert.Equal(t, Error{Service: "sts", Method: "POST", Path: "/oauth/2/token", StatusCode: 403,
		Code: "access_denied", Description: "policy denied (no_rule_matched)", RequestID: "body"}, *e)
	assert.Equal(t, "access_denied", eb.Error)

	e, _ = FromResponse("coordinator", "POST", "/p", resp(400), []byte(`{"error":"idempotency_key_invalid","message":"m","request_id":"snake"}`))
	assert.Equal(t, "snake", e.RequestID)
	assert.Equal(t, "m", e.Description)

	e, _ = FromResponse("coordinator", "DELETE", "/p", resp(502, "X-Request-Id", "hdr", "Retry-After", "2"), []byte("<html>bad\tgateway</html>"))
	assert.Empty(t, e.Code)
	assert.Equal(t, "<html>bad gateway</html>", e.Description)
	assert.Equal(t, "hdr", e.RequestID)
	assert.Equal(t, 2*time.Second, e.RetryAfter)

	long := strings.Repeat("é", 400)
	e, _ = FromResponse("gateway", "GET", "/", resp(500), []byte(long))
	assert.LessOrEqual(t, len(e.Description), maxTextBody+len("…"))
	assert.True(t, strings.HasSuffix(e.Description, "é…"), "cut on a rune boundary")
}

func TestRedact(t *testing.T) {
	e := &Error{Code: "x", Description: "echo: client_secret=a%2Bb%2Fc raw a+b/c", RequestID: "id"}
	e.Redact("", "a+b/c")
	assert.Equal(t, "echo: client_secret=[redacted] raw [redacted]", e.Description)
	assert.Equal(t, "x", e.Code)
}

func TestTransport(t *testing.T) {
	cause := errors.New("connection refused")
	err := Transport(context.Background(), context.Background(), time.Second, "sts", "POST", "/oauth/2/token", cause)
	assert.ErrorIs(t, err, ErrUnavailable)
	assert.ErrorIs(t, err, cause)
	assert.Equal(t, "caracal: sts POST /oauth/2/token: caracal: service unavailable: connection refused", err.Error())

	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("shutting down")
	cancel(stop)
	err = Transport(ctx, ctx, time.Second, "coordinator", "GET", "/x", cause)
	assert.ErrorIs(t, err, stop)
	assert.NotErrorIs(t, err, ErrUnavailable)

	// The call's own limit ran out: the service did not answer in time.
	call, cancelCall := context.WithTimeout(context.Background(), 0)
	defer cancelCall()
	err = Transport(context.Background(), call, 10*time.Second, "coordinator", "GET", "/x", context.DeadlineExceeded)
	assert.ErrorIs(t, err, ErrUnavailable)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, "caracal: coordinator GET /x: caracal: service unavailable: no answer within 10s: context deadline exceeded", err.Error())
}

func TestIsCredentials(t *testing.T) {
	for _, e := range []*Error{
		{Service: "sts", StatusCode: 401, Code: "access_denied", Description: "invalid client credentials"},
		{Service: "sts", StatusCode: 403, Code: "zone_invalid", Description: "application app-x is registered in zone b, not a"},
	} {
		assert.ErrorIs(t, e, ErrCredentials, e.Code)
	}
	for _, e := range []*Error{
		{Service: "sts", StatusCode: 403, Code: "access_denied", Description: "policy denied"},
		{Service: "coordinator", StatusCode: 401, Code: "invalid_token"},
	} {
		assert.NotErrorIs(t, e, ErrCredentials, e.Code)
	}
}

func TestIsLeaseLost(t *testing.T) {
	const (
		heartbeat = "/zones/z/agents/a/heartbeat"
		lease     = "/zones/z/agents/a/lease"
	)
	for _, e := range []*Error{
		{Service: "coordinator", Path: heartbeat, StatusCode: 404, Code: "session_not_found"},
		{Service: "coordinator", Path: lease, StatusCode: 404, Code: "session_not_found"},
		{Service: "coordinator", Path: heartbeat, StatusCode: 409, Code: "session_lease_fenced"},
		{Service: "coordinator", Path: "/zones/z/agents/a", StatusCode: 409, Code: "session_lease_fenced"},
		{Service: "coordinator", Path: heartbeat, StatusCode: 409, Code: "session_not_live"},
		{Service: "coordinator", Path: lease, StatusCode: 409, Code: "session_subject_inactive"},
		{Service: "coordinator", Path: heartbeat, StatusCode: 409, Code: "session_not_service"},
	} {
		assert.ErrorIs(t, e, ErrLeaseLost, e.Path+" "+e.Code)
	}
	for _, e := range []*Error{
		{Service: "coordinator", Path: heartbeat, StatusCode: 404, Code: "delegation_not_found"},
		{Service: "coordinator", Path: "/zones/z/agents", StatusCode: 404, Code: "parent_not_found"},
		{Service: "sts", Path: "/v1/oauth/token", StatusCode: 404, Code: "session_not_found"},
		{Service: "coordinator", Path: heartbeat, StatusCode: 409, Code: "session_lease_expired"},
		// A task session's start, retire or inbound listing answers
		// session_not_found about a session that holds no lease.
		{Service: "coordinator", Path: "/zones/z/agents", StatusCode: 404, Code: "session_not_found"},
		{Service: "coordinator", Path: "/zones/z/agents/a", StatusCode: 404, Code: "session_not_found"},
		{Service: "coordinator", Path: "/zones/z/agents/a/delegations/inbound", StatusCode: 404, Code: "session_not_found"},
		{Service: "coordinator", Path: "/zones/z/agents/a/heartbeat/x", StatusCode: 409, Code: "session_not_live"},
	} {
		assert.NotErrorIs(t, e, ErrLeaseLost, e.Path+" "+e.Code)
	}
}

func TestApproval(t *testing.T) {
	e := &Error{Service: "sts", StatusCode: 401, Code: "interaction_required"}
	_, eb := FromResponse("sts", "POST", "/", resp(401), []byte(`{"error":"interaction_required","approval_id":"a","state":"pending","tier":"high","binding":"b","approval_expires_at":"2026-08-22T10:15:00Z"}`))
	a := Approval(e, eb, "resource://tickets", []string{"b", "a", "a"})
	require.Equal(t, "a", a.ApprovalID)
	assert.Equal(t, []string{"a", "b"}, a.Scopes)
	assert.Equal(t, time.Date(2026, 8, 22, 10, 15, 0, 0, time.UTC), a.ExpiresAt)
	assert.ErrorIs(t, a, ErrApprovalRequired)
}

// A schema refusal says which fields were wrong (Coordinator shape 2).
func TestFromResponseNamesInvalidFields(t *testing.T) {
	e, _ := FromResponse("coordinator", "POST", "/zones/z/agents", resp(400), []byte(`{"error":"invalid_body",
		"error_description":"Request body failed validation","requestId":"r1","details":{"issues":[
		{"path":["labels","0"],"message":"String must contain at most 64 character(s)"},
		{"path":["ttl_seconds"],"message":"Expected number, received string"},
		{"path":[],"message":"Required"},
		{"path":["metadata"],"message":"Expected object, received array"}]}}`))
	assert.Equal(t, "invalid_body", e.Code)
	assert.Equal(t, "r1", e.RequestID)
	assert.Equal(t, "Request body failed validation: labels.0: String must contain at most 64 character(s); "+
		"ttl_seconds: Expected number, received string; (body): Required; and 1 more", e.Description)

	// A numeric path element (zod array index) is kept too.
	e, _ = FromResponse("coordinator", "POST", "/p", resp(400), []byte(`{"error":"invalid_body","details":{"issues":[{"path":["labels",3],"message":"Too long"}]}}`))
	assert.Equal(t, "invalid_body", e.Code)
	assert.Equal(t, "labels.3: Too long", e.Description)
}

// What an approval hold's body says goes into messages and logs as one
// bounded line; the approval id itself is kept as sent, for WaitApproval.
func TestApprovalTextIsBounded(t *testing.T) {
	long := strings.Repeat("x", 2000)
	_, eb := FromResponse("sts", "POST", "/", resp(401), []byte(`{"error":"interaction_required","approval_id":"ap\n`+long+`","state":"pend\ning`+long+`","tier":"high\n","binding":"`+long+`"}`))
	a := Approval(&Error{Service: "sts", StatusCode: 401}, eb, "resource://tickets", []string{"a"})
	assert.Equal(t, "ap\n"+long, a.ApprovalID)
	for _, s := range []string{a.Error(), a.State, a.Tier, a.Binding} {
		assert.NotContains(t, s, "\n")
		assert.Less(t, len(s), 1300)
	}

	// A path element of another type does not lose the rest of the body.
	e, _ := FromResponse("coordinator", "POST", "/p", resp(400), []byte(`{"error":"invalid_body","details":{"issues":[{"path":[true,2],"message":"odd"}]},"requestId":"r2"}`))
	assert.Equal(t, "invalid_body", e.Code)
	assert.Equal(t, "r2", e.RequestID)
	assert.Equal(t, "true.2: odd", e.Description)

	// Nor does a path that is not an array: decoding stops at an error a
	// field's own decoder returns, which would drop the request id after it.
	e, _ = FromResponse("coordinator", "POST", "/p", resp(400), []byte(`{"error":"invalid_body","details":{"issues":[{"path":"ttl_seconds","message":"odd"}]},"requestId":"r3"}`))
	assert.Equal(t, "invalid_body", e.Code)
	assert.Equal(t, "r3", e.RequestID)
	assert.Equal(t, "ttl_seconds: odd", e.Description)
}

func TestRedactURL(t *testing.T) {
	assert.Equal(t, "https://u:xxxxx@h/p", RedactURL("https://u:pw@h/p"))
	assert.Equal(t, "https://h/p", RedactURL("https://h/p"))
	assert.Equal(t, "https://xxxxx@h/p", RedactURL("https://ghp_token@h/p"))
	assert.Equal(t, "https://h/@user", RedactURL("https://h/@user"))
	assert.Equal(t, "http://xxxxx@h:bad", RedactURL("http://u:pw@h:bad"))
	assert.Equal(t, "xxxxx@h%zz", RedactURL("u:pw@h%zz"))
}

// A redirect's target is server text too: a Location with a host of any
// length, or of characters that are not printable, is shown bounded and on
// one line, as the rest of the answer is.
func TestFromResponseRedirectTargetIsBounded(t *testing.T) {
	for _, host := range []string{strings.Repeat("a", 1<<20), "evil\u2028host", "ex%0Aample"} {
		e, _ := FromResponse("sts", "POST", "/oauth/2/token", resp(302, "Location", "https://"+host+"/x"), nil)
		assert.LessOrEqual(t, len(e.Description), 4*maxTextBody, "%.20q", host)
		for _, r := range e.Description {
			assert.True(t, r == ' ' || unicode.IsPrint(r) && r != '\u2028', "%q in %.80q", r, e.Description)
		}
	}
}
