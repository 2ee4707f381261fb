// Package coordclient talks to the Caracal Coordinator: session start,
// resume and retire, heartbeat, lease acquire, delegation create and revoke,
// and the inbound-edge reads. Every call authenticates with a lifecycle token
// from a TokenSource and, on a 401, invalidates it and retries once with a
// fresh one; a static token (the configured bootstrap token) is not retried,
// as no refresh changes it, and its refusal says what to configure instead.
package coordclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/caracal-go/caracal/internal/apierr"
	"github.com/caracal-go/caracal/internal/retry"
	"github.com/caracal-go/caracal/internal/stsclient"
	"github.com/caracal-go/caracal/internal/wire"
)

const (
	// Timeout bounds one Coordinator request unless the caller's ctx is
	// shorter.
	Timeout = 10 * time.Second
	// StartRetries is how often a keyed session start is sent again after
	// a transient failure.
	StartRetries = 2
	// DelegateRetries is the same for a keyed delegation create.
	DelegateRetries = 1
	// ReadRetries is the same for reads.
	ReadRetries = 1

	maxBody = 1 << 20

	codeReceiptLimit = "idempotency_receipt_limit_exceeded"
	// codeDepthLimit refuses a start for its parent's depth, which no
	// retry changes.
	codeDepthLimit = "session_depth_limit_exceeded"
)

// TokenSource yields lifecycle tokens.
type TokenSource interface {
	Lifecycle(ctx context.Context) (stsclient.Token, error)
	Invalidate(value string)
}

// Config configures a Client.
type Config struct {
	BaseURL    string
	ZoneID     string
	HTTPClient *http.Client
	Tokens     TokenSource
	Logger     *slog.Logger // never nil

	// Closing, if set, ends when the caller's client closes: a call then
	// makes no further attempt, and fails with the last attempt's error and
	// Closing's cause.
	Closing context.Context

	// Sleep, if set, replaces retry.Sleep (tests).
	Sleep func(ctx context.Context, d time.Duration) error
}

// Client is safe for concurrent use.
type Client struct {
	cfg  Config
	base string
	zone string // path-escaped zone id

	// The paths of the two creates, built once: send tells them apart.
	agentsPath, delegationsPath string

	// receiptLimitSeen: the receipt limit was logged at warning level once;
	// later keyless starts log at debug level (past the limit every start
	// is keyless).
	receiptLimitSeen atomic.Bool
}

// New returns a Client.
func New(cfg Config) *Client {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Sleep == nil {
		cfg.Sleep = retry.Sleep
	}
	zone := url.PathEscape(cfg.ZoneID)
	return &Client{cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/"), zone: zone,
		agentsPath: "/zones/" + zone + "/agents", delegationsPath: "/zones/" + zone + "/delegations"}
}

// NewIdempotencyKey returns 32 random lowercase hex characters.
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Retire retires a session (DELETE /zones/{z}/agents/{id}); generation 0
// sends no body (task), otherwise {"lease_generation":generation}. A session
// that is already gone (404 session_not_found, 409 session_not_live) counts
// as retired. One attempt, plus one after a 401.
func (c *Client) Retire(ctx context.Context, id string, generation int64) error {
	path := "/zones/" + c.zone + "/agents/" + url.PathEscape(id)
	var body bodyFunc
	if generation != 0 {
		b, err := json.Marshal(wire.RetireRequest{LeaseGeneration: generation})
		if err != nil {
			return err
		}
		body = fixedBody(b)
	}
	out := c.do(ctx, http.MethodDelete, path, nil, body, nil)
	if out.api != nil && gone(out.api) {
		return nil
	}
	return out.err
}

// gone reports whether a retire answer means the session no longer runs.
func gone(e *apierr.Error) bool {
	return (e.StatusCode == http.StatusNotFound && e.Code == "session_not_found") ||
		(e.StatusCode == http.StatusConflict && e.Code == "session_not_live")
}

// Heartbeat renews a service lease. One attempt, plus one after a 401: the
// next tick of the caller's loop handles transient failures.
func (c *Client) Heartbeat(ctx context.Context, id string, generation int64) (wire.HeartbeatResponse, error) {
	path := "/zones/" + c.zone + "/agents/" + url.PathEscape(id) + "/heartbeat"
	b, err := json.Marshal(wire.HeartbeatRequest{Status: "healthy", LeaseGeneration: generation})
	if err != nil {
		return wire.HeartbeatResponse{}, err
	}
	var r wire.HeartbeatResponse
	out := c.do(ctx, http.MethodPost, path, nil, fixedBody(b), &r)
	if out.err != nil {
		return wire.HeartbeatResponse{}, out.err
	}
	// Only an answer about this session's lease renews it: one without the
	// agent, or about another session or generation, says nothing of it.
	if r.Agent.ID != id || (r.Agent.LeaseGeneration != 0 && int64(r.Agent.LeaseGeneration) != generation) {
		return wire.HeartbeatResponse{}, invalid(http.MethodPost, path, "the answer is not about this session's lease")
	}
	return r, nil
}

// Lease acquires (attaches to) a service session, bumping its generation.
// Not idempotent, so one attempt, plus one after a 401. It also returns the
// answer's Date header (zero if absent or malformed): the Coordinator's
// clock, to measure its deadline against.
func (c *Client) Lease(ctx context.Context, id string) (wire.LeaseResponse, time.Time, error) {
	path := "/zones/" + c.zone + "/agents/" + url.PathEscape(id) + "/lease"
	var r wire.LeaseResponse
	out := c.do(ctx, http.MethodPost, path, nil, nil, &r)
	if out.err != nil {
		return wire.LeaseResponse{}, time.Time{}, out.err
	}
	if r.LeaseGeneration < 1 {
		return wire.LeaseResponse{}, time.Time{}, invalid(http.MethodPost, path, "no lease generation")
	}
	date, err := http.ParseTime(out.header.Get("Date"))
	if err != nil {
		date = time.Time{}
	}
	return r, date, nil
}

// Resume resumes a suspended session and its suspended subtree, and
// reports how many sessions it resumed. Service deadlines restart at now
// plus the lease; the generation is unchanged. Not idempotent (a second call
// answers 409 session_not_found_or_not_suspended), so one attempt, plus one
// after a 401.
func (c *Client) Resume(ctx context.Context, id string) (int, error) {
	path := "/zones/" + c.zone + "/agents/" + url.PathEscape(id) + "/resume"
	var r wire.ResumeResponse
	out := c.do(ctx, http.MethodPatch, path, nil, nil, &r)
	return r.Resumed, out.err
}

// do sends one request with a lifecycle token and, if the Coordinator answers
// 401, invalidates that token and sends it once more with a fresh one after
// a short random pause (not when the source is a static, pre-minted token,
// which no refresh changes). body (nil for a bodiless request) is called with the
// token of each send. out, if non-nil, receives the decoded success body.
func (c *Client) do(ctx context.Context, method, path string, hdr http.Header, body bodyFunc, out any) outcome {
	if err := checkPath(path); err != nil {
		return outcome{err: err}
	}
	tok, err := c.cfg.Tokens.Lifecycle(ctx)
	if err != nil {
		return outcome{err: err}
	}
	res := c.send(ctx, tok, method, path, hdr, body, out)
	if res.api == nil {
		return res
	}
	if s, ok := c.cfg.Tokens.(interface{ Static() bool }); ok && s.Static() {
		// A pre-minted token is never refreshed: sending it again would
		// meet the same refusal, which only the configuration can fix.
		return bootstrapRefused(res)
	}
	if res.api.StatusCode != http.StatusUnauthorized {
		return res
	}
	c.cfg.Tokens.Invalidate(tok.Value)
	if err := c.cfg.Sleep(ctx, retry.RefreshPause()); err != nil {
		return outcome{err: gaveUp(res.err, err)}
	}
	tok, err = c.cfg.Tokens.Lifecycle(ctx)
	if err != nil {
		return outcome{err: err}
	}
	return c.send(ctx, tok, method, path, hdr, body, out)
}

// bodyFunc builds a request body for the lifecycle token of one send.
type bodyFunc func(stsclient.Token) ([]byte, error)

// fixedBody is the bodyFunc of a body that does not depend on the token.
func fixedBody(b []byte) bodyFunc {
	return func(stsclient.Token) ([]byte, error) { return b, nil }
}

// send performs one HTTP request.
func (c *Client) send(ctx context.Context, tok stsclient.Token, method, path string, hdr http.Header, body bodyFunc, out any) outcome {
	var rd io.Reader
	var payload []byte
	if body != nil {
		var err error
		if payload, err = body(tok); err != nil {
			return outcome{err: err}
		}
		rd = bytes.NewReader(payload)
	}
	callCtx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(callCtx, method, c.base+path, rd)
	if err != nil {
		return outcome{err: fmt.Errorf("caracal: Coordinator URL %q: %w", c.cfg.BaseURL, err)}
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", tok.Bearer())
	req.Header.Set("Accept", "application/json")
	// The Coordinator adopts this id as its own request id, but most of its
	// error bodies ({"error":"<code>"}) and no response header carry it
	// back (PROTOCOL §4.1): it is the id an error reports when the answer
	// names none.
	rid := uuid.NewString()
	req.Header.Set(wire.HeaderRequestID, rid)
	if body != nil {
		// Only with a body: the Coordinator refuses an empty body declared
		// as JSON.
		req.Header.Set("Content-Type", "application/json")
		if method == http.MethodPost && (path == c.agentsPath || path == c.delegationsPath) &&
			hdr.Get(wire.HeaderIdempotencyKey) == "" {
			// net/http's HTTP/2 transport re-sends a request whose stream
			// was reset with PROTOCOL_ERROR (which does not mean the
			// Coordinator left it unprocessed) if it can rewind the body;
			// without a key a second create would create a second session
			// or edge. A keyed one may be re-sent: the key makes it replay;
			// so may a heartbeat or a retire, which are repeatable.
			req.GetBody = nil
		}
	}
	if ctx.Err() != nil {
		// Not sent: nothing can have executed.
		return outcome{err: apierr.Transport(ctx, callCtx, Timeout, "coordinator", method, path, ctx.Err())}
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return netFailure(ctx, callCtx, method, path, err)
	}
	defer resp.Body.Close()
	raw, err := apierr.ReadBody(resp, maxBody)
	failed := resp.StatusCode < 200 || resp.StatusCode > 299
	if err != nil && !failed {
		return netFailure(ctx, callCtx, method, path, err)
	}
	// A refusal whose body was cut off is still an answer: its status
	// and headers say what happened. What was read of the body is
	// dropped: it may end in part of an echoed secret that no redaction
	// would recognise.
	if failed {
		if err != nil {
			raw = nil
		}
		e, _ := apierr.FromResponse("coordinator", method, path, resp, raw, tok.Value)
		if e.RequestID == "" {
			e.RequestID = rid
		}
		return outcome{
			header:    resp.Header,
			err:       e,
			api:       e,
			retryable: retry.RetryableStatus(e.StatusCode) && e.Code != codeReceiptLimit && e.Code != codeDepthLimit,
			ambiguous: e.StatusCode >= 500,
		}
	}
	if out != nil && len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return outcome{header: resp.Header, err: invalid(method, path, "malformed JSON")}
		}
	}
	return outcome{header: resp.Header}
}

// netFailure classifies a request that got no answer, which may have
// executed. The caller's own cancellation is final; the per-call timeout or
// a connection failure may be retried.
func netFailure(ctx, callCtx context.Context, method, path string, err error) outcome {
	err = apierr.Transport(ctx, callCtx, Timeout, "coordinator", method, path, err)
	if ctx.Err() != nil {
		return outcome{err: err, ambiguous: true}
	}
	return outcome{err: err, retryable: true, ambiguous: true}
}

func invalid(method, path, why string) error {
	return fmt.Errorf("caracal: coordinator %s %s: invalid response: %s: %w", method, path, why, apierr.ErrUnavailable)
}

// checkPath refuses a request path with an empty or dot segment: an id
// that is "", "." or ".." (escaping leaves them as they are) would make the
// request reach another route once a server or proxy resolves the path.
func checkPath(path string) error {
	_, rest, _ := strings.Cut(path, "/") // paths start with "/"
	for seg := range strings.SplitSeq(rest, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: an id in %s is empty or a dot segment", apierr.ErrInvalidRequest, path)
		}
	}
	return nil
}
