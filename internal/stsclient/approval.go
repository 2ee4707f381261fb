package stsclient

// Approval long-polls: GET /approvals/{id}?wait=.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caracal-go/caracal/internal/apierr"
	"github.com/caracal-go/caracal/internal/retry"
	"github.com/caracal-go/caracal/internal/wire"
)

// maxWait is the server's long-poll clamp for GET /approvals/{id}.
const maxWait = 25 * time.Second

// WaitApproval long-polls GET /approvals/{id}?wait= until the approval leaves
// pending or ctx is done. A decided approval (approved, rejected, expired,
// consumed) is returned with a nil error; the caller decides what each
// state means. When ctx ends first, the last status seen (pending, or zero
// if none was read) is returned with ctx's cause: waiting again is safe.
// Up to approvalRetries consecutive transient poll failures are waited out.
func (c *Client) WaitApproval(ctx context.Context, id string) (wire.ApprovalStatus, error) {
	if id == "" {
		return wire.ApprovalStatus{}, errors.New("caracal: WaitApproval needs an approval id")
	}
	path := "/approvals/" + url.PathEscape(id)
	var last wire.ApprovalStatus
	failures := 0 // consecutive transient poll failures
	for {
		if err := ctx.Err(); err != nil {
			return last, context.Cause(ctx)
		}
		wait := maxWait
		if dl, ok := ctx.Deadline(); ok {
			wait = waitFor(time.Until(dl))
		}
		if t := c.cfg.HTTPClient.Timeout; t > 0 {
			// The server holds a poll for the whole wait: keep it well
			// inside the HTTP client's own timeout. One too short for
			// even a one-second hold asks for none: the STS answers at
			// once, and minPollInterval paces the polls.
			wait = min(wait, waitFor(t-5*time.Second))
			if t < 2*time.Second {
				wait = 0
			}
		}
		started := time.Now()
		st, err := c.poll(ctx, path, wait)
		if err == nil && st.ID != "" && wire.CanonicalID(st.ID) != wire.CanonicalID(id) {
			// About another approval: it decides nothing of this one.
			err = fmt.Errorf("caracal: sts GET %s: the approval status is about another approval: %w", path, apierr.ErrUnavailable)
		}
		if err != nil {
			if ctx.Err() != nil {
				return last, context.Cause(ctx)
			}
			// A wait can last minutes: a brief STS outage within it is
			// waited out, a lasting one ends it.
			after, transient := transientPollError(err)
			if !transient || failures >= approvalRetries {
				return last, err
			}
			if retry.Sleep(ctx, retry.Backoff(failures, after, retry.Jitter())) != nil {
				// The wait ended before the STS answered again: what it
				// answered last is part of why.
				return last, fmt.Errorf("%w (the last poll failed: %w)", context.Cause(ctx), err)
			}
			failures++
			continue
		}
		failures = 0
		last = st
		if st.State != wire.ApprovalPending {
			return st, nil
		}
		// The STS holds a pending poll for the whole wait; one answered
		// sooner (a proxy, an older server) must not make this a hot loop.
		if early := minPollInterval - time.Since(started); early > 0 {
			if err := retry.Sleep(ctx, early); err != nil {
				return last, context.Cause(ctx)
			}
		}
	}
}

// minPollInterval is the least time between the starts of two approval
// polls.
const minPollInterval = time.Second

// approvalRetries is how many consecutive transient poll failures a wait
// outlasts.
const approvalRetries = 3

// transientPollError reports whether a failed poll may succeed if sent
// again (no answer, 408, 425, 429 or 5xx), with the server's Retry-After.
func transientPollError(err error) (retryAfter time.Duration, ok bool) {
	var e *apierr.Error
	if errors.As(err, &e) {
		return e.RetryAfter, retry.RetryableStatus(e.StatusCode)
	}
	return 0, errors.Is(err, apierr.ErrUnavailable)
}

// waitFor is the long-poll chunk for the time left: clamp(remaining, 1, 25)
// whole seconds.
func waitFor(remaining time.Duration) time.Duration {
	secs := int64(remaining / time.Second)
	return time.Duration(min(max(secs, 1), int64(maxWait/time.Second))) * time.Second
}

func (c *Client) poll(ctx context.Context, path string, wait time.Duration) (wire.ApprovalStatus, error) {
	// The server may hold the request for the whole wait; give it that
	// plus the usual exchange budget.
	limit := wait + Timeout
	call, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	u := strings.TrimRight(c.cfg.BaseURL, "/") + path + "?wait=" + strconv.Itoa(int(wait/time.Second))
	req, err := http.NewRequestWithContext(call, http.MethodGet, u, nil)
	if err != nil {
		return wire.ApprovalStatus{}, fmt.Errorf("caracal: STS URL %q: %w", c.cfg.BaseURL, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return wire.ApprovalStatus{}, apierr.Transport(ctx, call, limit, "sts", http.MethodGet, path, err)
	}
	defer resp.Body.Close()
	body, err := apierr.ReadBody(resp, maxBody)
	if err != nil && resp.StatusCode == http.StatusOK {
		return wire.ApprovalStatus{}, apierr.Transport(ctx, call, limit, "sts", http.MethodGet, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		if err != nil {
			body = nil // cut off: the status and headers still tell
		}
		e, _ := apierr.FromResponse("sts", http.MethodGet, path, resp, body)
		return wire.ApprovalStatus{}, e
	}
	var st wire.ApprovalStatus
	if err := json.Unmarshal(body, &st); err != nil || st.State == "" {
		return wire.ApprovalStatus{}, fmt.Errorf("caracal: sts GET %s: invalid approval status: %w", path, apierr.ErrUnavailable)
	}
	return st, nil
}
