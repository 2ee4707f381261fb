// Package retry holds the SDK's control-plane retry timing: the backoff
// between attempts, Retry-After parsing and a context-aware sleep. The
// functions that decide durations are pure so that they can be tested
// exactly; randomness is passed in.
package retry

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Timing constants (PROTOCOL §9.3, Appendix A).
const (
	// Step is the linear backoff step: attempt n waits Step*(n+1).
	Step = 250 * time.Millisecond
	// MaxJitter bounds the uniform jitter added to every backoff.
	MaxJitter = 100 * time.Millisecond
	// MaxRetryAfter caps a server's Retry-After so that a hostile or
	// confused server cannot park a caller for hours.
	MaxRetryAfter = 10 * time.Second
	// MaxRefreshPause bounds the random pause before retrying a call
	// that was refused 401 with a freshly exchanged token; it spreads the
	// re-exchanges of many callers that were refused at once.
	MaxRefreshPause = 250 * time.Millisecond
)

// Backoff returns the pause before retry number attempt (0 for the first
// retry). A positive retryAfter (from the server's Retry-After header) wins
// over the linear schedule but is capped at MaxRetryAfter. jitter is added
// as is after being clamped into [0, MaxJitter); pass Jitter().
func Backoff(attempt int, retryAfter, jitter time.Duration) time.Duration {
	if attempt < 0 {
		attempt = 0
	}
	jitter = min(max(jitter, 0), MaxJitter-1)
	if retryAfter > 0 {
		return min(retryAfter, MaxRetryAfter) + jitter
	}
	// The schedule is linear and retries are few (2 at most), so the
	// product cannot overflow for any attempt a caller makes; cap it anyway
	// at the Retry-After ceiling.
	if attempt >= int(MaxRetryAfter/Step) {
		return MaxRetryAfter + jitter
	}
	return Step*time.Duration(attempt+1) + jitter
}

// Jitter returns a uniformly random duration in [0, MaxJitter).
func Jitter() time.Duration {
	return rand.N(MaxJitter)
}

// RefreshPause returns a uniformly random duration in [0, MaxRefreshPause].
func RefreshPause() time.Duration {
	return rand.N(MaxRefreshPause + 1)
}

// ParseRetryAfter parses a Retry-After header value: either non-negative
// delay seconds or an HTTP-date, relative to now. It reports false for an
// absent or malformed value. A date in the past yields 0, true. The result
// is not capped; Backoff caps it.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if isDigits(v) {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			// Only overflow gets here: the value is absurdly large.
			return time.Duration(1<<63 - 1), true
		}
		if secs > int64((1<<63-1)/time.Second) {
			return time.Duration(1<<63 - 1), true
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d := t.Sub(now); d > 0 {
		return d, true
	}
	return 0, true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Sleep pauses for d or until ctx is done, whichever comes first. It
// returns ctx's cause if ctx ended the pause, nil otherwise.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return context.Cause(ctx)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// RetryableStatus reports whether an HTTP status may succeed when an
// idempotent (or idempotency-keyed) request is sent again: 408, 425, 429 and
// every 5xx. Callers exclude codes that must not be retried (such as
// idempotency_receipt_limit_exceeded) themselves.
func RetryableStatus(status int) bool {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly, status == http.StatusTooManyRequests:
		return true
	case status >= 500 && status <= 599:
		return true
	}
	return false
}
