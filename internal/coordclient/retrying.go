package coordclient

// Retrying a call: the outcome of one attempt, the retry loop and the pause
// between attempts.

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/caracal-go/caracal/internal/apierr"
	"github.com/caracal-go/caracal/internal/retry"
)

// outcome is the result of one logical call (including its 401 retry).
type outcome struct {
	header http.Header
	err    error
	api    *apierr.Error // the answer, when there was a non-success one
	// retryable: sending the same request again may succeed (408, 425, 429
	// except the receipt and depth limits, 5xx, network failure).
	retryable bool
	// ambiguous: the request may have executed although no success came
	// back (5xx or a network failure after sending).
	ambiguous bool
}

// retrying makes call, and makes it again up to retries times while it fails
// transiently, pausing in between; call must be safe to repeat.
func (c *Client) retrying(ctx context.Context, retries int, call func() outcome) error {
	for n := 0; ; n++ {
		out := call()
		if out.err == nil || !out.retryable || n >= retries {
			return out.err
		}
		if err := c.pause(ctx, n, out); err != nil {
			return gaveUp(out.err, err)
		}
	}
}

// pause sleeps before retry number retries; it fails when ctx or
// cfg.Closing ends first, and at once when the retry would start after ctx's
// deadline or the client is closing already.
func (c *Client) pause(ctx context.Context, retries int, out outcome) error {
	var after time.Duration
	if out.api != nil {
		after = out.api.RetryAfter
	}
	d := retry.Backoff(retries, after, retry.Jitter())
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return fmt.Errorf("the next attempt is due in %v, after the deadline: %w", d, context.DeadlineExceeded)
	}
	if closing := c.cfg.Closing; closing != nil {
		if closing.Err() != nil {
			return context.Cause(closing)
		}
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		defer context.AfterFunc(closing, func() { cancel(context.Cause(closing)) })()
	}
	c.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, "caracal: retrying coordinator call",
		slog.Int("retry", retries+1), slog.Duration("after", d), slog.String("error", out.err.Error()))
	return c.cfg.Sleep(ctx, d)
}

// gaveUp reports the last failure together with the reason for not
// retrying it (the caller's ctx ended during the backoff, say).
func gaveUp(last, why error) error {
	return fmt.Errorf("%w (not retried: %w)", last, why)
}
