package retry

import (
	"context"
	"errors"
	"math"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBackoffSchedule(t *testing.T) {
	cases := []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		jitter     time.Duration
		want       time.Duration
	}{
		{"first retry", 0, 0, 0, 250 * time.Millisecond},
		{"second retry", 1, 0, 0, 500 * time.Millisecond},
		{"third retry with jitter", 2, 0, 40 * time.Millisecond, 790 * time.Millisecond},
		{"negative attempt counts as first", -3, 0, 0, 250 * time.Millisecond},
		{"jitter clamped below", 0, 0, -time.Second, 250 * time.Millisecond},
		{"jitter clamped above", 0, 0, time.Hour, 250*time.Millisecond + MaxJitter - 1},
		{"retry-after wins", 0, 3 * time.Second, 10 * time.Millisecond, 3*time.Second + 10*time.Millisecond},
		{"retry-after capped", 1, time.Hour, 0, MaxRetryAfter},
		{"huge attempt capped", math.MaxInt, 0, 5, MaxRetryAfter + 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Backoff(tc.attempt, tc.retryAfter, tc.jitter))
		})
	}
}

func TestJitterRange(t *testing.T) {
	for range 1000 {
		j := Jitter()
		require.GreaterOrEqual(t, j, time.Duration(0))
		require.Less(t, j, MaxJitter)
		p := RefreshPause()
		require.GreaterOrEqual(t, p, time.Duration(0))
		require.LessOrEqual(t, p, MaxRefreshPause)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 8, 22, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"  ", 0, false},
		{"0", 0, true},
		{"7", 7 * time.Second, true},
		{" 12 ", 12 * time.Second, true},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"99999999999999999999999", time.Duration(1<<63 - 1), true},
		{now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"Sat, 22 Aug 2026 10:00:30 GMT", 30 * time.Second, true},
		{"Saturday, 22-Aug-26 10:00:02 GMT", 2 * time.Second, true}, // RFC 850
	}
	for _, tc := range cases {
		got, ok := ParseRetryAfter(tc.in, now)
		assert.Equal(t, tc.wantOK, ok, "%q", tc.in)
		assert.Equal(t, tc.want, got, "%q", tc.in)
	}
	// A parsed value fed to Backoff never exceeds the cap.
	d, ok := ParseRetryAfter("86400", now)
	require.True(t, ok)
	assert.Equal(t, MaxRetryAfter, Backoff(0, d, 0))
}

func TestSleepElapses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		require.NoError(t, Sleep(t.Context(), 750*time.Millisecond))
		assert.Equal(t, 750*time.Millisecond, time.Since(start))
	})
}

func TestSleepStopsOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cause := errors.New("caller gave up")
		ctx, cancel := context.WithCancelCause(t.Context())
		time.AfterFunc(100*time.Millisecond, func() { cancel(cause) })
		start := time.Now()
		err := Sleep(ctx, 10*time.Second)
		assert.ErrorIs(t, err, cause)
		assert.Equal(t, 100*time.Millisecond, time.Since(start))
	})
}

func TestSleepZero(t *testing.T) {
	require.NoError(t, Sleep(context.Background(), 0))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, Sleep(ctx, 0), context.Canceled)
	assert.ErrorIs(t, Sleep(ctx, time.Hour), context.Canceled)
}

func TestRetryableStatus(t *testing.T) {
	for _, s := range []int{408, 425, 429, 500, 502, 503, 504, 599} {
		assert.True(t, RetryableStatus(s), "%d", s)
	}
	for _, s := range []int{200, 201, 204, 400, 401, 403, 404, 409, 413, 600} {
		assert.False(t, RetryableStatus(s), "%d", s)
	}
}
