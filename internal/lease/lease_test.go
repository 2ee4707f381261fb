package lease

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/caracal-go/caracal/internal/apierr"
)

const s = time.Second

func TestRenewDelay(t *testing.T) {
	tests := []struct {
		name      string
		interval  time.Duration
		remaining time.Duration
		u         float64
		want      time.Duration
	}{
		{"derived default lease, no jitter", 0, 120 * s, 0.5, 40 * s},
		{"derived default lease, low jitter", 0, 120 * s, 0, 36 * s},
		{"derived default lease, high jitter", 0, 120 * s, 1, 44 * s},
		{"derived clamps to 5 min", 0, time.Hour, 0.5, 5 * time.Minute},
		{"derived clamp then jitter", 0, time.Hour, 1, 330 * s},
		{"derived floor 1 s", 0, 2400 * time.Millisecond, 0.5, 1 * s},
		{"derived floor never past two thirds", 0, 900 * time.Millisecond, 0.5, 600 * time.Millisecond},
		{"fixed interval is exact", 30 * s, 120 * s, 0.99, 30 * s},
		{"fixed interval ignores jitter", 30 * s, 120 * s, 0, 30 * s},
		{"fixed interval longer than the lease", 5 * time.Minute, 120 * s, 0.5, 80 * s},
		{"fixed interval at the limit", 80 * s, 120 * s, 0.5, 80 * s},
		{"lease gone", 0, 0, 0.5, 0},
		{"lease gone, fixed", 30 * s, -s, 0.5, 0},
		{"bad u clamped high", 0, 120 * s, 7, 44 * s},
		{"bad u clamped low", 0, 120 * s, -3, 36 * s},
		{"NaN u", 0, 120 * s, math.NaN(), 36 * s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, RenewDelay(tt.interval, tt.remaining, tt.u))
		})
	}
}

func TestRenewDelayBounds(t *testing.T) {
	// Property: a renewal is always scheduled strictly inside the lease and
	// (for a derived cadence) within [0.9, 1.1] of a third of it, clamped.
	for _, rem := range []time.Duration{time.Millisecond, 500 * time.Millisecond, s, 3 * s, 10 * s, 120 * s, 30 * time.Minute, 24 * time.Hour} {
		for _, u := range []float64{0, 0.1, 0.5, 0.9, 0.999999} {
			d := RenewDelay(0, rem, u)
			assert.Positive(t, d, "rem=%v u=%v", rem, u)
			assert.Less(t, d, rem, "rem=%v u=%v", rem, u)
			assert.LessOrEqual(t, d, scale(MaxCadence, 1.1))
		}
	}
}

func TestRetryDelay(t *testing.T) {
	long := time.Hour
	tests := []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		remaining  time.Duration
		u          float64
		want       time.Duration
	}{
		{"first failure, low jitter", 0, 0, long, 0, 500 * time.Millisecond},
		{"first failure, high jitter", 0, 0, long, 1, 1 * s},
		{"second failure", 1, 0, long, 0, 1 * s},
		{"third failure", 2, 0, long, 0.5, 3 * s},
		{"exponential capped", 10, 0, long, 1, BackoffMax},
		{"cap with low jitter", 10, 0, long, 0, BackoffMax / 2},
		{"huge attempt does not overflow", math.MaxInt, 0, long, 1, BackoffMax},
		{"negative attempt is the first", -4, 0, long, 0, 500 * time.Millisecond},
		{"retry-after wins when longer", 0, 7 * s, long, 0, 7 * s},
		{"retry-after ignored when shorter", 5, 2 * s, long, 1, 30 * s},
		{"long retry-after cut to a third of the lease", 0, time.Hour, 90 * s, 0, 30 * s},
		{"backoff cut to a third of the lease", 10, 0, 30 * s, 1, 10 * s},
		{"never below MinRetry", 10, 0, 900 * time.Millisecond, 1, MinRetry},
		{"never past the deadline", 10, 0, 200 * time.Millisecond, 1, 200 * time.Millisecond},
		{"lease gone", 0, 0, 0, 0.5, 0},
		{"lease long gone", 3, time.Minute, -time.Minute, 0.5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, RetryDelay(tt.attempt, tt.retryAfter, tt.remaining, tt.u))
		})
	}
}

// TestRetryDelayBoundedTraffic walks a whole outage the way the loop does and
// checks the two promises: the loop never spins, and it never sleeps past the
// deadline, whatever the jitter draws.
func TestRetryDelayBoundedTraffic(t *testing.T) {
	for _, lease := range []time.Duration{2 * s, 120 * s, 30 * time.Minute} {
		for _, u := range []float64{0, 0.5, 0.999} {
			remaining, attempts := lease, 0
			for remaining > 0 {
				d := RetryDelay(attempts, 0, remaining, u)
				assert.Positive(t, d)
				assert.LessOrEqual(t, d, remaining)
				if d < remaining {
					assert.GreaterOrEqual(t, d, min(MinRetry, remaining))
				}
				remaining -= d
				attempts++
			}
			// A 30-minute lease with a dead Coordinator costs well under
			// one call every 10 s on average.
			assert.LessOrEqual(t, attempts, int(lease/(10*s))+20, "lease %v u %v: %d attempts", lease, u, attempts)
		}
	}
}

func TestCallTimeout(t *testing.T) {
	assert.Equal(t, 10*s, CallTimeout(time.Hour))
	assert.Equal(t, 3*s, CallTimeout(3*s))
	assert.Equal(t, time.Duration(0), CallTimeout(-s))
}

func TestClassify(t *testing.T) {
	coord := func(status int, code string) error {
		return &apierr.Error{Service: "coordinator", Method: "POST", Path: "/x", StatusCode: status, Code: code}
	}
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"not found", coord(404, "session_not_found"), Gone},
		{"404 without a code", coord(404, ""), Gone},
		{"not live", coord(409, "session_not_live"), Gone},
		{"subject inactive", coord(409, "session_subject_inactive"), Gone},
		{"not a service", coord(409, "session_not_service"), Gone},
		{"legacy gone code", coord(409, "session_not_found_or_not_active"), Gone},
		{"already terminated", coord(409, "already_terminated"), Gone},
		{"fenced", coord(409, "session_lease_fenced"), Fenced},
		{"wrapped fenced", fmt.Errorf("heartbeat: %w", coord(409, "session_lease_fenced")), Fenced},
		{"lease expired", coord(409, "session_lease_expired"), Suspended},
		{"suspended on attach", coord(409, "session_suspended"), Suspended},
		{"server error", coord(503, ""), Transient},
		{"rate limited", coord(429, "rate_limited"), Transient},
		{"unauthorized", coord(401, "identity_revoked"), Transient},
		{"other conflict", coord(409, "something_new"), Transient},
		{"sts 404 is not the session", &apierr.Error{Service: "sts", StatusCode: 404}, Transient},
		{"network", errors.New("dial tcp: connection refused"), Transient},
		{"timeout", context.DeadlineExceeded, Transient},
		{"nil", nil, Transient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Classify(tt.err))
		})
	}
}
