package stsclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/apierr"
	"github.com/caracal-go/caracal/internal/wire"
)

const secret = "s3cr3t-value"

// jwt builds an unsigned token carrying claims; the client never checks
// signatures.
func jwt(claims map[string]any) string {
	enc := base64.RawURLEncoding
	p, _ := json.Marshal(claims)
	return enc.EncodeToString([]byte(`{"alg":"ES256"}`)) + "." + enc.EncodeToString(p) + ".c2ln"
}

// fakeSTS is a scripted token endpoint.
type fakeSTS struct {
	mu    sync.Mutex
	forms []url.Values
	calls atomic.Int64
	// answer, if set, replaces the default success.
	answer func(w http.ResponseWriter, r *http.Request, n int64)
}

func (f *fakeSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.calls.Add(1)
	if r.URL.Path == "/oauth/2/token" {
		_ = r.ParseForm()
		f.mu.Lock()
		f.forms = append(f.forms, r.PostForm)
		f.mu.Unlock()
	}
	if f.answer != nil {
		f.answer(w, r, n)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":900,"scope":"agent:lifecycle"}`,
		jwt(map[string]any{"sid": fmt.Sprintf("sid-%d", n), "use": "session", "exp": 1787393700}))
}

func (f *fakeSTS) lastForm() url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.forms[len(f.forms)-1]
}

func newClient(t *testing.T, h http.Handler, mod ...func(*Config)) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg := Config{
		BaseURL:       srv.URL + "/",
		ZoneID:        "zone-test",
		ApplicationID: "app-test",
		ClientSecret:  secret,
		Resources:     []string{"resource://tickets", "resource://ledger"},
		HTTPClient:    srv.Client(),
	}
	for _, m := range mod {
		m(&cfg)
	}
	return New(cfg)
}

func TestLifecycleExchange(t *testing.T) {
	sts := &fakeSTS{}
	var ct string
	c := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ct = r.Header.Get("Content-Type")
		assert.Empty(t, r.URL.RawQuery)
		sts.ServeHTTP(w, r)
	}))
	tok, err := c.Lifecycle(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "application/x-www-form-urlencoded", ct)
	assert.Equal(t, "sid-1", tok.SID)
	assert.Equal(t, "session", tok.Use)
	assert.True(t, time.Unix(1787393700, 0).Equal(tok.ExpiresAt), "exp is before now+expires_in: %v", tok.ExpiresAt)
	assert.Contains(t, tok.ExpiresAt.String(), " m=", "the expiry keeps a monotonic clock reading")
	assert.NotContains(t, tok.String(), tok.Value)
	assert.NotContains(t, fmt.Sprintf("%#v", tok), tok.Value)
	assert.Equal(t, "Bearer "+tok.Value, tok.Bearer())
	assert.Equal(t, "Bearer x", Token{Value: "x"}.Bearer())

	f := sts.lastForm()
	assert.Equal(t, wire.GrantTypeTokenExchange, f.Get("grant_type"))
	assert.Equal(t, "zone-test", f.Get("zone_id"))
	assert.Equal(t, "app-test", f.Get("application_id"))
	assert.Equal(t, secret, f.Get("client_secret"))
	assert.Equal(t, "agent:lifecycle", f.Get("scope"))
	assert.Equal(t, []string{"resource://tickets", "resource://ledger"}, f["resource"])
	for _, k := range []string{"ttl_seconds", "agent_session_id", "delegation_edge_id", "subject_token", "session_id"} {
		assert.NotContains(t, f, k)
	}
}

func TestLifecycleCacheAndRefreshMargin(t *testing.T) {
	for _, tc := range []struct {
		expiresIn   int64
		life        time.Duration // the token's life: expires_in, at most a day
		refreshedAt time.Duration // first instant the cache is bypassed
	}{
		{900, 900 * time.Second, 840 * time.Second}, // margin min(60s, 450s) = 60s
		{60, time.Minute, 30 * time.Second},         // margin min(60s, 30s) = 30s
		{1, time.Second, 500 * time.Millisecond},
		// Past what a time.Duration holds: capped at a day rather than
		// overflowing into "already due".
		{100000000000, 24 * time.Hour, 24*time.Hour - time.Minute},
	} {
		t.Run(fmt.Sprint(tc.expiresIn), func(t *testing.T) {
			sts := &fakeSTS{answer: func(w http.ResponseWriter, r *http.Request, n int64) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = fmt.Fprintf(w, `{"access_token":"opaque-%d","expires_in":%d}`, n, tc.expiresIn)
			}}
			base := time.Date(2026, 8, 22, 10, 0, 0, 0, time.UTC)
			var now atomic.Int64
			now.Store(base.UnixNano())
			c := newClient(t, sts, func(cfg *Config) {
				cfg.Now = func() time.Time { return time.Unix(0, now.Load()) }
			})
			first, err := c.Lifecycle(t.Context())
			require.NoError(t, err)
			assert.Equal(t, base.Add(tc.life), first.ExpiresAt.UTC(), "no exp claim: expiry from expires_in")

			now.Store(base.Add(tc.refreshedAt - time.Nanosecond).UnixNano())
			again, err := c.Lifecycle(t.Context())
			require.NoError(t, err)
			assert.Equal(t, first.Value, again.Value)
			assert.EqualValues(t, 1, sts.calls.Load())

			now.Store(base.Add(tc.refreshedAt).UnixNano())
			fresh, err := c.Lifecycle(t.Context())
			require.NoError(t, err)
			assert.NotEqual(t, first.Value, fresh.Value)
			assert.EqualValues(t, 2, sts.calls.Load())
		})
	}
}

func TestInvalidate(t *testing.T) {
	sts := &fakeSTS{}
	c := newClient(t, sts)
	a, err := c.Lifecycle(t.Context())
	require.NoError(t, err)

	c.Invalidate("some-other-token")
	b, err := c.Lifecycle(t.Context())
	require.NoError(t, err)
	assert.Equal(t, a.Value, b.Value, "invalidating a different value keeps the cache")

	c.Invalidate(a.Value)
	b, err = c.Lifecycle(t.Context())
	require.NoError(t, err)
	assert.NotEqual(t, a.Value, b.Value)
	assert.Equal(t, "sid-2", b.SID)

	c.Invalidate(a.Value) // stale invalidation after a refresh: no effect
	d, err := c.Lifecycle(t.Context())
	require.NoError(t, err)
	assert.Equal(t, b.Value, d.Value)
	assert.EqualValues(t, 2, sts.calls.Load())

	c.Drop() // whatever is cached
	e, err := c.Lifecycle(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "sid-3", e.SID)
}

// rtFunc is an http.RoundTripper from a function (used inside synctest
// bubbles, where sockets are not allowed).
type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func jsonResponse(status int, body string) *http.Response {
	return &http.Response{
		StatusCode: status,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(body)),
	}
}

// gatedSTS answers token requests only once release is closed.
func gatedSTS(calls *atomic.Int64, release <-chan struct{}) *http.Client {
	return &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
		n := calls.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
		return jsonResponse(200, fmt.Sprintf(`{"access_token":"tok-%d","expires_in":900}`, n)), nil
	})}
}

func TestLifecycleSingleFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		release := make(chan struct{})
		c := New(Config{BaseURL: "http://sts.invalid", ClientSecret: secret, Resources: []string{"r"}, HTTPClient: gatedSTS(&calls, release)})
		const n = 32
		got := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				tok, err := c.Lifecycle(t.Context())
				assert.NoError(t, err)
				got[i] = tok.Value
			})
		}
		synctest.Wait()
		assert.EqualValues(t, 1, calls.Load(), "one exchange while all callers wait")
		close(release)
		wg.Wait()
		for _, v := range got {
			assert.Equal(t, "tok-1", v)
		}
	})
}

func TestLifecycleFollowerCancelDoesNotCancelLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		release := make(chan struct{})
		c := New(Config{BaseURL: "http://sts.invalid", ClientSecret: secret, Resources: []string{"r"}, HTTPClient: gatedSTS(&calls, release)})

		leader := make(chan error, 1)
		go func() { _, err := c.Lifecycle(t.Context()); leader <- err }()
		synctest.Wait()

		ctx, cancel := context.WithCancelCause(t.Context())
		follower := make(chan error, 1)
		go func() { _, err := c.Lifecycle(ctx); follower <- err }()
		synctest.Wait()
		gone := errors.New("follower gave up")
		cancel(gone)
		assert.ErrorIs(t, <-follower, gone)

		close(release)
		require.NoError(t, <-leader)
		assert.EqualValues(t, 1, calls.Load())
	})
}

func TestLifecycleLeaderCancelFollowerRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		release := make(chan struct{})
		c := New(Config{BaseURL: "http://sts.invalid", ClientSecret: secret, Resources: []string{"r"}, HTTPClient: gatedSTS(&calls, release)})

		ctx, cancel := context.WithCancel(t.Context())
		leader := make(chan error, 1)
		go func() { _, err := c.Lifecycle(ctx); leader <- err }()
		synctest.Wait()
		follower := make(chan Token, 1)
		go func() {
			tok, err := c.Lifecycle(t.Context())
			assert.NoError(t, err)
			follower <- tok
		}()
		synctest.Wait()
		cancel()
		assert.ErrorIs(t, <-leader, context.Canceled)
		synctest.Wait() // the follower has started its own exchange
		assert.EqualValues(t, 2, calls.Load())
		close(release)
		assert.Equal(t, "tok-2", (<-follower).Value)
	})
}

func TestExchangeTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		c := New(Config{BaseURL: "http://sts.invalid", ClientSecret: secret, Resources: []string{"r"}, HTTPClient: gatedSTS(&calls, nil)})
		start := time.Now()
		_, err := c.Lifecycle(t.Context())
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorIs(t, err, apierr.ErrUnavailable, "the STS did not answer in time")
		assert.Equal(t, Timeout, time.Since(start))

		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		start = time.Now()
		_, err = c.Mint(ctx, MintRequest{Resource: "r", Scopes: []string{"s"}})
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.NotErrorIs(t, err, apierr.ErrUnavailable, "the caller gave up")
		assert.Equal(t, 2*time.Second, time.Since(start), "a shorter caller deadline wins")
	})
}

func TestErrorAnswers(t *testing.T) {
	sts := &fakeSTS{answer: func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "hdr-id")
		w.WriteHeader(401)
		_, _ = io.WriteString(w, `{"error":"access_denied","error_description":"invalid client credentials","requestId":"req-1"}`)
	}}
	c := newClient(t, sts)
	_, err := c.Lifecycle(t.Context())
	var e *apierr.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "sts", e.Service)
	assert.Equal(t, "POST", e.Method)
	assert.Equal(t, "/oauth/2/token", e.Path)
	assert.Equal(t, 401, e.StatusCode)
	assert.Equal(t, "access_denied", e.Code)
	assert.Equal(t, "invalid client credentials", e.Description)
	assert.Equal(t, "req-1", e.RequestID)
	assert.ErrorIs(t, err, apierr.ErrCredentials)
	assert.ErrorIs(t, err, apierr.ErrUnauthorized)
	assert.NotContains(t, err.Error(), secret)
	assert.NotContains(t, fmt.Sprintf("%+v %#v", err, err), secret)

	// Failures are not cached: the next call exchanges again.
	_, err = c.Lifecycle(t.Context())
	require.Error(t, err)
	assert.EqualValues(t, 2, sts.calls.Load())
}

func TestErrorWithoutJSONBody(t *testing.T) {
	sts := &fakeSTS{answer: func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("X-Request-Id", "hdr-id")
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(503)
		_, _ = io.WriteString(w, "upstream\x00 down\n")
	}}
	_, err := newClient(t, sts).Lifecycle(t.Context())
	var e *apierr.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 503, e.StatusCode)
	assert.Empty(t, e.Code)
	assert.Equal(t, "upstream  down", e.Description)
	assert.Equal(t, "hdr-id", e.RequestID)
	assert.Equal(t, 3*time.Second, e.RetryAfter)
	assert.ErrorIs(t, err, apierr.ErrUnavailable)
}

func TestEchoedSecretIsRedacted(t *testing.T) {
	// A proxy in front of the STS that echoes the request in its error
	// page must not carry the client secret into the error.
	sts := &fakeSTS{answer: func(w http.ResponseWriter, r *http.Request, n int64) {
		w.WriteHeader(400)
		_, _ = io.WriteString(w, "bad request: "+r.PostForm.Encode())
	}}
	_, err := newClient(t, sts).Lifecycle(t.Context())
	var e *apierr.Error
	require.ErrorAs(t, err, &e)
	assert.Contains(t, e.Description, "client_secret=[redacted]")
	assert.NotContains(t, fmt.Sprintf("%v %+v %#v", err, err, e), secret)
}

func TestEchoedSecretIsRedactedWhenTheTextIsCut(t *testing.T) {
	// A long error page is cut to a few hundred bytes for the error; the
	// cut may fall inside the echoed secret, and no piece of it may remain.
	for pad := 430; pad < 470; pad++ {
		sts := &fakeSTS{answer: func(w http.ResponseWriter, r *http.Request, n int64) {
			w.WriteHeader(502)
			_, _ = io.WriteString(w, strings.Repeat("x", pad)+" "+r.PostForm.Encode())
		}}
		_, err := newClient(t, sts).Lifecycle(t.Context())
		require.Error(t, err)
		assert.NotContains(t, err.Error(), secret[:4], "padding %d", pad)
	}
}

func TestSTSDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	c := New(Config{BaseURL: base, ClientSecret: secret, Resources: []string{"r"}})
	_, err := c.Lifecycle(t.Context())
	require.Error(t, err)
	assert.ErrorIs(t, err, apierr.ErrUnavailable)
	assert.Contains(t, err.Error(), "caracal: sts POST /oauth/2/token")
	assert.NotContains(t, err.Error(), secret)
}

func TestNoResources(t *testing.T) {
	sts := &fakeSTS{}
	c := newClient(t, sts, func(cfg *Config) { cfg.Resources = nil })
	_, err := c.Lifecycle(t.Context())
	assert.ErrorContains(t, err, "no resources configured")
	assert.Zero(t, sts.calls.Load())
}

func TestStaticMode(t *testing.T) {
	sts := &fakeSTS{}
	static := jwt(map[string]any{"sid": "rec-static", "use": "session", "exp": time.Now().Add(time.Hour).Unix()})
	c := newClient(t, sts, func(cfg *Config) { cfg.ClientSecret = ""; cfg.BootstrapToken = static })
	require.True(t, c.Static())
	tok, err := c.Lifecycle(t.Context())
	require.NoError(t, err)
	assert.Equal(t, static, tok.Value)
	assert.Equal(t, "Bearer "+static, tok.Bearer())
	assert.Equal(t, "rec-static", tok.SID)
	c.Invalidate(static) // a static token cannot be replaced
	tok, err = c.Lifecycle(t.Context())
	require.NoError(t, err)
	assert.Equal(t, static, tok.Value)

	_, err = c.Mint(t.Context(), MintRequest{Resource: "r", Scopes: []string{"s"}})
	assert.ErrorIs(t, err, apierr.ErrStaticToken)
	assert.Zero(t, sts.calls.Load())

	expired := jwt(map[string]any{"sid": "rec-old", "exp": time.Now().Add(-time.Minute).Unix()})
	c = newClient(t, sts, func(cfg *Config) { cfg.ClientSecret = ""; cfg.BootstrapToken = expired })
	_, err = c.Lifecycle(t.Context())
	assert.ErrorContains(t, err, "bootstrap token expired")
	assert.NotContains(t, err.Error(), expired)

	// An exp past what a Unix time in int64 holds is far future, not past.
	for _, exp := range []float64{1e19, 1e300} {
		far := jwt(map[string]any{"sid": "rec-far", "use": "session", "exp": exp})
		c = newClient(t, sts, func(cfg *Config) { cfg.ClientSecret = ""; cfg.BootstrapToken = far })
		tok, err = c.Lifecycle(t.Context())
		require.NoError(t, err, "exp %g", exp)
		assert.Equal(t, far, tok.Value)
	}
}

// A bootstrap token is expired from the second of its exp claim on, not
// only after it.
func TestStaticTokenExpiredAtItsExp(t *testing.T) {
	exp := time.Unix(time.Now().Add(time.Hour).Unix(), 0)
	static := jwt(map[string]any{"sid": "rec-static", "use": "session", "exp": exp.Unix()})
	var now time.Time
	c := newClient(t, &fakeSTS{}, func(cfg *Config) {
		cfg.ClientSecret, cfg.BootstrapToken = "", static
		cfg.Now = func() time.Time { return now }
	})
	now = exp.Add(-time.Nanosecond)
	_, err := c.Lifecycle(t.Context())
	require.NoError(t, err)
	now = exp
	_, err = c.Lifecycle(t.Context())
	assert.ErrorIs(t, err, apierr.ErrCredentials)
}
