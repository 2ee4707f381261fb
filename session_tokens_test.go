package caracal_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

func TestConcurrentSpawnsShareOneToken(t *testing.T) {
	for round := range 5 {
		st, c := newStack(t)
		const n = 24
		var wg sync.WaitGroup
		sessions := make([]*caracal.Session, n)
		for i := range n {
			wg.Go(func() {
				s, err := c.Spawn(t.Context(), caracal.WithLabels("reader"))
				assert.NoError(t, err)
				sessions[i] = s
			})
		}
		wg.Wait()
		assert.Equal(t, 1, st.Count(caracaltest.RouteToken), "round %d: one exchange serves every start", round)
		assert.Equal(t, n, st.Count(caracaltest.RouteStart))
		seen := map[string]bool{}
		for _, s := range sessions {
			require.NotNil(t, s)
			assert.False(t, seen[s.ID()])
			seen[s.ID()] = true
		}
		require.NoError(t, c.Close(t.Context()))
		assert.Equal(t, 1, st.Count(caracaltest.RouteToken))
	}
}

func TestSTSDown(t *testing.T) {
	st, c := newStack(t)
	st.Inject(caracaltest.RouteToken, caracaltest.Fault{Status: 503})
	_, err := c.Spawn(t.Context())
	var e *caracal.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "sts", e.Service)
	assert.Equal(t, 503, e.StatusCode)
	assert.ErrorIs(t, err, caracal.ErrUnavailable)
	assert.Zero(t, st.Count(caracaltest.RouteStart), "nothing is started without a token")
	assert.Equal(t, 1, st.Count(caracaltest.RouteToken), "an exchange is never retried")

	// A refused secret.
	st.ClearFaults()
	st.Inject(caracaltest.RouteToken, caracaltest.Fault{Status: 401, Code: "access_denied", Description: "invalid client credentials", Times: 1})
	_, err = c.Spawn(t.Context())
	assert.ErrorIs(t, err, caracal.ErrCredentials)
	assert.NotContains(t, err.Error(), st.Application().Secret)

	// And recovered.
	_, err = c.Spawn(t.Context())
	require.NoError(t, err)

	// Nothing listening at all.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	cfg := st.Config()
	cfg.STSURL = dead.URL
	c2, err := caracal.NewFromConfig(cfg, st.ClientOptions()...)
	require.NoError(t, err)
	defer c2.Close(context.Background())
	_, err = c2.Spawn(t.Context())
	assert.ErrorIs(t, err, caracal.ErrUnavailable)
	assert.NotContains(t, err.Error(), st.Application().Secret)
}

func TestCoordinator401RefreshesTokenAndRetries(t *testing.T) {
	st, c := newStack(t)
	_, err := c.Spawn(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, st.Count(caracaltest.RouteToken))

	st.Inject(caracaltest.RouteStart, caracaltest.Fault{Status: 401, Code: "identity_revoked", Times: 1})
	s, err := c.Spawn(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 2, st.Count(caracaltest.RouteToken), "the refused token was replaced")
	assert.Equal(t, 3, st.Count(caracaltest.RouteStart))
	info, _ := st.SessionInfo(s.ID())
	starts := startsOf(st)
	assert.Equal(t, starts[1].Header.Get("Idempotency-Key"), starts[2].Header.Get("Idempotency-Key"))
	assert.Equal(t, info.SubjectRecordID, s.Agent().SubjectRecordID())

	// A second 401 after the refresh is returned, not looped on.
	st.Inject(caracaltest.RouteRetire, caracaltest.Fault{Status: 401, Code: "invalid_token", Times: 2})
	err = s.Close(t.Context())
	assert.ErrorIs(t, err, caracal.ErrUnauthorized)
	assert.Equal(t, 2, st.Count(caracaltest.RouteRetire))
}

func TestRevokeDelegationThenSpawnStillWorks(t *testing.T) {
	// Revoking a delegation revokes the authority record of the lifecycle
	// token the target was started with (PROTOCOL §3.4), which is the
	// client's cached token: the client drops it rather than hand it out.
	st, c := newStack(t)
	root, child := narrowReader(t, c, caracal.Constraints{}, "reader")
	require.NoError(t, c.RevokeDelegation(t.Context(), child.Agent().DelegationID()))
	edge, _ := st.EdgeInfo(child.Agent().DelegationID())
	assert.Equal(t, "revoked", edge.Status)
	info, _ := st.SessionInfo(child.ID())
	assert.Equal(t, "terminated", info.Status)
	st.ResetRecord()

	// Headers hands out a token the Coordinator still accepts.
	h, err := c.Headers(root.Context())
	require.NoError(t, err)
	req, _ := http.NewRequestWithContext(t.Context(), "POST", st.CoordinatorURL()+"/zones/"+st.Zone()+"/agents", strings.NewReader(`{"application_id":"`+st.Application().ID+`"}`))
	req.Header = h
	req.Header.Set("Content-Type", "application/json")
	resp, err := st.HTTPClient().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 201, resp.StatusCode)

	s, err := c.Spawn(root.Context())
	require.NoError(t, err)
	assert.NotEmpty(t, s.ID())
	for _, r := range startsOf(st) {
		assert.NotEqual(t, 401, r.Status, "no call is made with the revoked token")
	}
	require.NoError(t, child.Close(t.Context()), "already gone counts as retired")

	err = c.RevokeDelegation(t.Context(), "no-such-edge")
	assert.ErrorIs(t, err, caracal.ErrNotFound)
}

func TestTransientStartFailuresAreRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, _ := newClient(t, st)
		_, err := c.Spawn(t.Context()) // warm the token
		require.NoError(t, err)
		st.ResetRecord()

		st.Inject(caracaltest.RouteStart, caracaltest.Fault{Status: 503, Times: 2})
		s, err := c.Spawn(t.Context())
		require.NoError(t, err)
		starts := startsOf(st)
		require.Len(t, starts, 3)
		assert.Equal(t, starts[0].Header.Get("Idempotency-Key"), starts[2].Header.Get("Idempotency-Key"))
		assert.Equal(t, string(starts[0].Body), string(starts[2].Body))
		// Backoff 250 ms × (n+1) plus up to 100 ms of jitter.
		for i, want := range []time.Duration{250 * time.Millisecond, 500 * time.Millisecond} {
			gap := starts[i+1].At.Sub(starts[i].At)
			assert.GreaterOrEqual(t, gap, want, "retry %d", i+1)
			assert.Less(t, gap, want+100*time.Millisecond, "retry %d", i+1)
		}
		info, _ := st.SessionInfo(s.ID())
		assert.Equal(t, "active", info.Status)

		st.Inject(caracaltest.RouteStart, caracaltest.Fault{Status: 503})
		_, err = c.Spawn(t.Context())
		assert.ErrorIs(t, err, caracal.ErrUnavailable)
		// Two retries, then the error. A 503 may come after the start
		// committed, so the client then sends the start once more, in the
		// background, to find the session and retire it.
		synctest.Wait()
		assert.Len(t, startsOf(st), 7)

		// A Retry-After (which no Caracal service sends, but a proxy may)
		// wins over the schedule.
		st.ClearFaults()
		st.ResetRecord()
		st.Inject(caracaltest.RouteStart, caracaltest.Fault{Status: 429, RetryAfter: 3 * time.Second, Times: 1})
		_, err = c.Spawn(t.Context())
		require.NoError(t, err)
		starts = startsOf(st)
		require.Len(t, starts, 2)
		gap := starts[1].At.Sub(starts[0].At)
		assert.GreaterOrEqual(t, gap, 3*time.Second)
		assert.Less(t, gap, 3*time.Second+100*time.Millisecond)
	})
}

func TestReceiptLimitFallsBackToKeylessStart(t *testing.T) {
	st, c := newStack(t, caracaltest.WithLimits(caracaltest.Limits{ReceiptsPerScope: 100}))
	for range 100 {
		s, err := c.Spawn(t.Context())
		require.NoError(t, err)
		require.NoError(t, s.Close(t.Context()))
	}
	st.ResetRecord()
	s, err := c.Spawn(t.Context())
	require.NoError(t, err, "the receipt limit never stops the application's agents")
	starts := startsOf(st)
	require.Len(t, starts, 2)
	assert.Equal(t, 429, starts[0].Status)
	assert.NotEmpty(t, starts[0].Header.Get("Idempotency-Key"))
	assert.Equal(t, 201, starts[1].Status)
	assert.Empty(t, starts[1].Header.Values("Idempotency-Key"))
	info, _ := st.SessionInfo(s.ID())
	assert.Equal(t, "active", info.Status)

	// A caller's own key is never dropped.
	_, err = c.Spawn(t.Context(), caracal.WithIdempotencyKey("order-42"))
	var e *caracal.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "idempotency_receipt_limit_exceeded", e.Code)
}

func TestTokenRefreshBeforeExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient()
		require.NoError(t, err)
		defer c.Close(context.Background())

		s, err := c.Spawn(t.Context())
		require.NoError(t, err)
		require.NoError(t, s.Close(t.Context()))
		require.Equal(t, 1, st.Count(caracaltest.RouteToken))

		// 900 s tokens are served until 60 s before expiry.
		time.Sleep(839 * time.Second)
		s, err = c.Spawn(t.Context())
		require.NoError(t, err)
		require.NoError(t, s.Close(t.Context()))
		assert.Equal(t, 1, st.Count(caracaltest.RouteToken))

		time.Sleep(2 * time.Second)
		s, err = c.Spawn(t.Context())
		require.NoError(t, err)
		assert.Equal(t, 2, st.Count(caracaltest.RouteToken), "refreshed inside the margin")
		for _, r := range st.Requests() {
			assert.NotEqual(t, 401, r.Status, "no call was made with an expired token")
		}
		require.NoError(t, s.Close(t.Context()))
	})
}

// skewClock is the stack's clock running ahead of the client's by off.
type skewClock struct{ off atomic.Int64 }

func (c *skewClock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

func TestExpiredTokenRecoversThrough401(t *testing.T) {
	// The servers' clock runs ahead of the client's, so the cached token
	// is already expired where it counts: the Coordinator refuses it, and
	// the client exchanges once more and retries.
	clk := &skewClock{}
	st, c := newStack(t, caracaltest.WithClock(clk))
	_, err := c.Spawn(t.Context())
	require.NoError(t, err)
	clk.off.Store(int64(901 * time.Second))

	s, err := c.Spawn(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 2, st.Count(caracaltest.RouteToken))
	starts := startsOf(st)
	require.Len(t, starts, 3)
	assert.Equal(t, 401, starts[1].Status)
	assert.Equal(t, 201, starts[2].Status)
	require.NoError(t, s.Close(t.Context()))
}

func TestBootstrapTokenMode(t *testing.T) {
	st, c := newStack(t)
	h, err := c.Headers(t.Context(), caracal.AsApplication())
	require.NoError(t, err)
	tok := strings.TrimPrefix(h.Get("Authorization"), "Bearer ")

	cfg := st.Config()
	cfg.ClientSecret = ""
	cfg.BootstrapToken = tok
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer hc.CloseIdleConnections()
	static, err := caracal.NewFromConfig(cfg, caracal.WithHTTPClient(hc))
	require.NoError(t, err)
	defer static.Close(context.Background())
	st.ResetRecord()

	root, err := static.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	child, err := static.Spawn(root.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{}, time.Minute)))
	require.NoError(t, err)
	assert.NotEmpty(t, child.Agent().DelegationID())
	assert.Zero(t, st.Count(caracaltest.RouteToken), "the bootstrap token is used as is")
	_, err = caracal.MintUse(child.Context(), static, "resource://tickets", "tickets:read")
	assert.ErrorIs(t, err, caracal.ErrStaticToken)
	h, err = static.Headers(child.Context())
	require.NoError(t, err)
	assert.Equal(t, "Bearer "+tok, h.Get("Authorization"))
	require.NoError(t, static.Close(t.Context()))
	info, _ := st.SessionInfo(root.ID())
	assert.Equal(t, "terminated", info.Status)
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	st := caracaltest.Start(t)
	var elsewhere atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
	}))
	defer evil.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()

	for _, svc := range []string{"sts", "coordinator"} {
		t.Run(svc, func(t *testing.T) {
			cfg := st.Config()
			if svc == "sts" {
				cfg.STSURL = redirector.URL
			} else {
				cfg.CoordinatorURL = redirector.URL
			}
			c, err := caracal.NewFromConfig(cfg)
			require.NoError(t, err)
			defer c.Close(context.Background())

			_, err = c.Spawn(t.Context())
			var apiErr *caracal.Error
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, http.StatusTemporaryRedirect, apiErr.StatusCode)
			assert.Equal(t, svc, apiErr.Service)
			assert.Contains(t, err.Error(), "redirected the request to "+evil.URL)
			assert.Contains(t, err.Error(), "check the configured URL")
			assert.NotContains(t, err.Error(), cfg.ClientSecret)
			assert.Zero(t, elsewhere.Load(), "nothing reached the redirect target")
		})
	}

	t.Run("jwks", func(t *testing.T) {
		c, err := st.NewClient()
		require.NoError(t, err)
		defer c.Close(context.Background())
		mw, err := c.Middleware(caracal.VerifyTokens("resource://tickets", caracal.VerifyJWKSURL(redirector.URL+"/jwks")))
		require.NoError(t, err)
		h := mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("the handler ran") }))
		enc := base64.RawURLEncoding.EncodeToString
		token := enc([]byte(`{"alg":"ES256","kid":"k"}`)) + "." + enc([]byte(`{"iss":"`+strings.Repeat("x", 100)+`"}`)) + "." + enc(make([]byte, 64))
		req := httptest.NewRequest(http.MethodGet, "/tickets/1", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		assert.Equal(t, http.StatusUnauthorized, rec.Code)
		assert.Zero(t, elsewhere.Load(), "the key set was not fetched from the redirect target")
	})
}
