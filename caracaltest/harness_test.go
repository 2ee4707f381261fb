package caracaltest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Routes mounted next to the world's to test the harness on its own.
const (
	testSTSRoute   = "POST /test/sts"
	testCoordRoute = "POST /test/coordinator"
	testGWRoute    = "GET /test/gateway"
	testWaitRoute  = "GET /test/wait"
)

func withRoutes(rs ...route) Option {
	return func(s *settings) { s.extraRoutes = append(s.extraRoutes, rs...) }
}

// okHandler answers 200 {"ok":true}.
var okHandler http.HandlerFunc = func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"ok":true}`)
}

// waitHandler answers when its request's context ends.
var waitHandler http.HandlerFunc = func(w http.ResponseWriter, r *http.Request) {
	<-r.Context().Done()
}

func harnessRoutes() Option {
	return withRoutes(
		route{service: svcSTS, pattern: testSTSRoute, handler: okHandler},
		route{service: svcCoordinator, pattern: testCoordRoute, handler: okHandler},
		route{service: svcGateway, pattern: testGWRoute, handler: okHandler},
		route{service: svcCoordinator, pattern: testWaitRoute, handler: waitHandler},
	)
}

// harnessMode is one way of reaching a stack.
type harnessMode struct {
	name     string
	inMemory bool
}

var harnessModes = []harnessMode{{"loopback", false}, {"memory", true}}

// start starts a stack in the mode with the harness routes, and returns it
// with a client that reaches it the way the mode says: real sockets over
// loopback, the in-memory transport otherwise.
func (m harnessMode) start(t *testing.T, opts ...Option) (*Stack, *http.Client) {
	t.Helper()
	opts = append([]Option{harnessRoutes()}, opts...)
	if m.inMemory {
		opts = append(opts, InMemory())
	}
	s := Start(t, opts...)
	if m.inMemory {
		return s, s.HTTPClient()
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return s, &http.Client{Transport: tr}
}

func doReq(t *testing.T, hc *http.Client, method, u, contentType, body string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, strings.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := hc.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func decodeBody(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	return m
}

// fakeJWT builds an unsigned token with the given claims.
func fakeJWT(claims map[string]any) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]string{"alg": "ES256", "kid": "k1"}) + "." + enc(claims) + ".c2ln"
}

func TestFaultBodiesFollowTheServiceShape(t *testing.T) {
	for _, m := range harnessModes {
		t.Run(m.name, func(t *testing.T) {
			s, hc := m.start(t)

			s.Inject(testSTSRoute, Fault{Status: 503, RetryAfter: 1500 * time.Millisecond})
			resp := doReq(t, hc, "POST", s.STSURL()+"/test/sts", "application/x-www-form-urlencoded", "a=b")
			assert.Equal(t, 503, resp.StatusCode)
			assert.Equal(t, "2", resp.Header.Get("Retry-After"), "rounded up to whole seconds")
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			// Only the token endpoint carries a request id at the STS.
			assert.Equal(t, map[string]any{"error": "sts_unavailable", "error_description": "injected fault"}, decodeBody(t, resp))

			s.Inject(testCoordRoute, Fault{Status: 409, Code: "session_not_live"})
			resp = doReq(t, hc, "POST", s.CoordinatorURL()+"/test/coordinator", "application/json", "{}")
			assert.Equal(t, 409, resp.StatusCode)
			assert.Empty(t, resp.Header.Get("Retry-After"))
			assert.Equal(t, map[string]any{"error": "session_not_live"}, decodeBody(t, resp))

			s.ClearFaults()
			s.Inject(testCoordRoute, Fault{Status: 500})
			resp = doReq(t, hc, "POST", s.CoordinatorURL()+"/test/coordinator", "application/json", "{}")
			assert.Equal(t, 500, resp.StatusCode)
			assert.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"), "the Coordinator's own writer")
			body := decodeBody(t, resp)
			assert.Equal(t, "internal_error", body["error"])
			assert.Equal(t, "The service failed to process the request", body["error_description"])
			assert.NotEmpty(t, body["requestId"])
			resp = doReq(t, hc, "POST", s.CoordinatorURL()+"/test/coordinator", "application/json", "{}", "X-Request-Id", "req-7")
			assert.Equal(t, "req-7", decodeBody(t, resp)["requestId"], "the Coordinator adopts a valid X-Request-Id")
			assert.Empty(t, resp.Header.Get("X-Request-Id"), "and does not echo it (PROTOCOL §4.1)")

			s.Inject(testGWRoute, Fault{Status: 429, Description: "slow down"})
			resp = doReq(t, hc, "GET", s.GatewayURL()+"/test/gateway", "", "", "X-Request-Id", "req-42")
			assert.Equal(t, 429, resp.StatusCode)
			assert.Equal(t, "req-42", resp.Header.Get("X-Request-Id"))
			assert.Equal(t, map[string]any{"error": "provider_rate_limited", "error_description": "slow down", "requestId": "req-42"}, decodeBody(t, resp))

			resp = doReq(t, hc, "GET", s.GatewayURL()+"/test/gateway", "", "")
			assert.Equal(t, 429, resp.StatusCode, "a fault without Times or For stays")
			rid := resp.Header.Get("X-Request-Id")
			assert.NotEmpty(t, rid, "a request id is generated when the client sent none")
			assert.Equal(t, rid, decodeBody(t, resp)["requestId"])
			resp = doReq(t, hc, "GET", s.GatewayURL()+"/test/gateway", "", "", "X-Request-Id", "has space")
			rid = resp.Header.Get("X-Request-Id")
			assert.NotEqual(t, "has space", rid, "the Gateway adopts only printable ASCII without spaces (PROTOCOL §8.3)")
			assert.Equal(t, rid, decodeBody(t, resp)["requestId"])

			s.ClearFaults()
			resp = doReq(t, hc, "GET", s.GatewayURL()+"/test/gateway", "", "")
			assert.Equal(t, 200, resp.StatusCode)
		})
	}
}

func TestFaultTimesAndQueue(t *testing.T) {
	for _, m := range harnessModes {
		t.Run(m.name, func(t *testing.T) {
			s, hc := m.start(t)
			s.Inject(testCoordRoute, Fault{Status: 503, Times: 2})
			s.Inject(testCoordRoute, Fault{Status: 429, Times: 1})
			var got []int
			for range 4 {
				got = append(got, doReq(t, hc, "POST", s.CoordinatorURL()+"/test/coordinator", "application/json", "{}").StatusCode)
			}
			assert.Equal(t, []int{503, 503, 429, 200}, got)
			assert.Equal(t, 4, s.Count(testCoordRoute))
			var statuses []int
			for _, r := range s.Requests() {
				statuses = append(statuses, r.Status)
			}
			assert.Equal(t, got, statuses, "the record holds what the client saw")
		})
	}
}

func TestFaultWindowFollowsTheStackClock(t *testing.T) {
	fc := NewFakeClock(time.Date(2026, 8, 22, 10, 0, 0, 0, time.UTC))
	s, hc := harnessModes[1].start(t, WithClock(fc))
	s.Inject(testSTSRoute, Fault{Status: 502, For: 10 * time.Second})
	post := func() int {
		return doReq(t, hc, "POST", s.STSURL()+"/test/sts", "", "").StatusCode
	}
	assert.Equal(t, 502, post())
	fc.Advance(9 * time.Second)
	assert.Equal(t, 502, post())
	fc.Advance(time.Second)
	assert.Equal(t, 200, post(), "the window is over")
	assert.Equal(t, fc.Now(), s.Requests()[2].At, "requests are stamped with the stack clock")
}

func TestFaultDelay(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, hc := harnessModes[1].start(t)
			s.Inject(testCoordRoute, Fault{Delay: 2 * time.Second, Times: 1})
			start := time.Now()
			resp := doReq(t, hc, "POST", s.CoordinatorURL()+"/test/coordinator", "application/json", "{}")
			assert.Equal(t, 200, resp.StatusCode, "a Delay-only fault runs the route, late")
			assert.Equal(t, 2*time.Second, time.Since(start))

			s.Inject(testCoordRoute, Fault{Delay: time.Minute, Status: 503})
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			start = time.Now()
			req, _ := http.NewRequestWithContext(ctx, "POST", s.CoordinatorURL()+"/test/coordinator", strings.NewReader("{}"))
			_, err := hc.Do(req)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Equal(t, time.Second, time.Since(start), "the delay gives up with the client")
			reqs := s.Requests()
			require.Len(t, reqs, 2)
			assert.Equal(t, 0, reqs[1].Status, "no answer was sent")
		})
	})
	t.Run("loopback", func(t *testing.T) {
		s, hc := harnessModes[0].start(t)
		s.Inject(testCoordRoute, Fault{Delay: time.Hour, Status: 503})
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", s.CoordinatorURL()+"/test/coordinator", strings.NewReader("{}"))
		_, err := hc.Do(req)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		// Close must not wait out the hour either (the test would time out).
		require.NoError(t, s.Close())
	})
}

func TestFaultDrop(t *testing.T) {
	for _, m := range harnessModes {
		t.Run(m.name, func(t *testing.T) {
			s, hc := m.start(t)
			s.Inject(testCoordRoute, Fault{Drop: true, Times: 1})
			req, _ := http.NewRequestWithContext(t.Context(), "POST", s.CoordinatorURL()+"/test/coordinator", strings.NewReader("{}"))
			resp, err := hc.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			require.Error(t, err, "the client sees a transport error, not a response")
			var ue *url.Error
			require.ErrorAs(t, err, &ue)
			if m.inMemory {
				assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
			}
			reqs := s.Requests()
			require.Len(t, reqs, 1)
			assert.Equal(t, 0, reqs[0].Status)
			assert.Equal(t, testCoordRoute, reqs[0].Pattern)

			resp = doReq(t, hc, "POST", s.CoordinatorURL()+"/test/coordinator", "application/json", "{}")
			assert.Equal(t, 200, resp.StatusCode, "Times: 1 dropped only one request")
		})
	}
}

func TestInjectUnknownPatternPanics(t *testing.T) {
	s, _ := harnessModes[1].start(t)
	assert.Panics(t, func() { s.Inject("POST /zones/{zone}/agent", Fault{Status: 500}) })
	assert.Panics(t, func() { s.Inject(RouteStart, Fault{Status: 500, Times: -1}) })
	assert.Panics(t, func() { s.Inject(RouteStart, Fault{Status: 5000}) })
}

func TestRecordRedactsSecrets(t *testing.T) {
	for _, m := range harnessModes {
		t.Run(m.name, func(t *testing.T) {
			s, hc := m.start(t)
			tok := fakeJWT(map[string]any{"use": "gateway", "jti": "jti-1", "sub": "app-test"})
			form := "grant_type=x&client_secret=s3cr%2Bet&subject_token=" + tok + "&resource=r1&resource=r2"
			resp := doReq(t, hc, "POST", s.STSURL()+"/test/sts?q=1", "application/x-www-form-urlencoded", form,
				"Authorization", "Bearer "+tok, "X-Request-Id", "rid-1")
			require.Equal(t, 200, resp.StatusCode)

			reqs := s.Requests()
			require.Len(t, reqs, 1)
			r := reqs[0]
			assert.Equal(t, svcSTS, r.Service)
			assert.Equal(t, "POST", r.Method)
			assert.Equal(t, "/test/sts", r.Path)
			assert.Equal(t, testSTSRoute, r.Pattern)
			assert.Equal(t, url.Values{"q": {"1"}}, r.Query)
			assert.Equal(t, 200, r.Status)
			assert.False(t, r.At.IsZero())
			assert.Equal(t, "Bearer <use=gateway jti=jti-1>", r.Header.Get("Authorization"))
			assert.Equal(t, "rid-1", r.Header.Get("X-Request-Id"))
			assert.Equal(t, "[redacted]", r.Form.Get("client_secret"))
			assert.Equal(t, "<use=gateway jti=jti-1>", r.Form.Get("subject_token"))
			assert.Equal(t, []string{"r1", "r2"}, r.Form["resource"])
			assert.Equal(t, "x", r.Form.Get("grant_type"))
			for _, secret := range []string{"s3cr", tok} {
				assert.NotContains(t, string(r.Body), secret)
				assert.NotContains(t, r.Header.Get("Authorization"), secret)
			}
			assert.True(t, strings.HasPrefix(string(r.Body), "grant_type=x&client_secret=%5Bredacted%5D&"), "field order is kept: %s", r.Body)

			// A form the STS refuses for its content type still holds the
			// secret: it is redacted all the same.
			s.ResetRecord()
			resp = doReq(t, hc, "POST", s.STSURL()+"/oauth/2/token", "text/plain", "grant_type=x&client_secret=hunter2")
			require.Equal(t, 415, resp.StatusCode)
			r = s.Requests()[0]
			assert.NotContains(t, string(r.Body), "hunter2")
			assert.Equal(t, "grant_type=x&client_secret=%5Bredacted%5D", string(r.Body))
			assert.Nil(t, r.Form, "Form is the parsed body of form requests only")
			s.ResetRecord()
			resp = doReq(t, hc, "POST", s.STSURL()+"/test/sts", "application/x-www-form-urlencoded", form,
				"Authorization", "Bearer "+tok, "X-Request-Id", "rid-1")
			require.Equal(t, 200, resp.StatusCode)
			reqs = s.Requests()

			// Requests returns copies.
			reqs[0].Header.Set("Authorization", "changed")
			assert.Equal(t, "Bearer <use=gateway jti=jti-1>", s.Requests()[0].Header.Get("Authorization"))

			resp = doReq(t, hc, "POST", s.CoordinatorURL()+"/test/coordinator", "application/json", `{"a":1}`, "Authorization", "Bearer opaque-token")
			require.Equal(t, 200, resp.StatusCode)
			r = s.Requests()[1]
			assert.Equal(t, svcCoordinator, r.Service)
			assert.Equal(t, `{"a":1}`, string(r.Body))
			assert.Nil(t, r.Form)
			assert.Equal(t, "Bearer <opaque>", r.Header.Get("Authorization"))

			assert.Equal(t, 1, s.Count(testSTSRoute))
			assert.Equal(t, 1, s.Count(testCoordRoute))
			s.ResetRecord()
			assert.Empty(t, s.Requests())
			assert.Zero(t, s.Count(testSTSRoute))
		})
	}
}

func TestEchoUpstream(t *testing.T) {
	for _, m := range harnessModes {
		t.Run(m.name, func(t *testing.T) {
			s, hc := m.start(t)
			base := s.UpstreamURL("resource://tickets")
			require.NotEmpty(t, base)
			tok := fakeJWT(map[string]any{
				"use": "resource", "sub": "app-test", "jti": "j2", "agent_session_id": "s1",
				"delegation_edge_id": "e1", "hop_count": 2, "scope": "tickets:read", "aud": "resource://tickets",
			})
			resp := doReq(t, hc, "PUT", base+"/tickets/7?x=1&x=2", "text/plain", "body!",
				"Authorization", "Bearer "+tok, "Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
				"Baggage", "k=v", "X-Request-Id", "r-9")
			require.Equal(t, 200, resp.StatusCode)
			var e EchoResponse
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
			assert.Equal(t, "PUT", e.Method)
			assert.Equal(t, "/tickets/7", e.Path)
			assert.Equal(t, map[string][]string{"x": {"1", "2"}}, e.Query)
			assert.Equal(t, "body!", e.Body)
			assert.Equal(t, "k=v", e.Baggage)
			assert.Equal(t, "r-9", e.RequestID)
			assert.Equal(t, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", e.Traceparent)
			require.NotNil(t, e.Claims)
			assert.Equal(t, EchoClaims{Use: "resource", Sub: "app-test", JTI: "j2", AgentSessionID: "s1",
				DelegationEdgeID: "e1", HopCount: 2, Scope: "tickets:read", Aud: []string{"resource://tickets"}}, *e.Claims)
			assert.NotContains(t, e.Header, "Authorization")

			reqs := s.Requests()
			require.Len(t, reqs, 1)
			assert.Equal(t, svcUpstream, reqs[0].Service)
			assert.Equal(t, "Bearer <use=resource jti=j2>", reqs[0].Header.Get("Authorization"))
		})
	}
}

func TestCloseEndsRunningRequests(t *testing.T) {
	for _, m := range harnessModes {
		t.Run(m.name, func(t *testing.T) {
			entered := make(chan struct{}, 1)
			s, hc := m.start(t, withRoutes(route{service: svcCoordinator, pattern: "GET /test/park", handler: func(w http.ResponseWriter, r *http.Request) {
				entered <- struct{}{}
				waitHandler(w, r)
			}}))
			errc := make(chan error, 1)
			go func() {
				req, _ := http.NewRequestWithContext(context.Background(), "GET", s.CoordinatorURL()+"/test/park", nil)
				resp, err := hc.Do(req)
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				errc <- err
			}()
			<-entered // the handler runs inside the gate
			require.Equal(t, 1, s.gate.running())
			require.NoError(t, s.Close())
			assert.Zero(t, s.gate.running())
			<-errc // ends one way or the other, without waiting for the client
			require.NoError(t, s.Close(), "Close is idempotent")

			_, err := hc.Get(s.CoordinatorURL() + "/test/wait")
			assert.Error(t, err, "a closed stack answers nothing")
		})
	}
}

func TestStackInSynctestBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, hc := harnessModes[1].start(t)
		// The real-clock sweeper runs on the bubble's clock.
		time.Sleep(10 * time.Second)
		resp := doReq(t, hc, "POST", s.CoordinatorURL()+"/test/coordinator", "application/json", "{}")
		assert.Equal(t, 200, resp.StatusCode)
		// Test fails if Close (run by Cleanup) leaves a goroutine behind.
	})
}

func TestFakeClockDrivesTheStackSweeper(t *testing.T) {
	fc := NewFakeClock(time.Now())
	s := Start(t, WithClock(fc), InMemory())
	assert.Nil(t, s.sweeping, "no real-time sweeper with a FakeClock")
	fc.mu.Lock()
	n := len(fc.sweepers)
	fc.mu.Unlock()
	assert.Equal(t, 1, n)
	require.NoError(t, s.Close())
	fc.mu.Lock()
	n = len(fc.sweepers)
	fc.mu.Unlock()
	assert.Zero(t, n, "Close unregisters the sweeper")
}

func TestEveryRouteConstantIsMounted(t *testing.T) {
	s := Start(t, InMemory())
	want := map[string]string{
		RouteToken: svcSTS, RouteApproval: svcSTS, RouteJWKS: svcSTS,
		RouteStart: svcCoordinator, RouteRetire: svcCoordinator, RouteHeartbeat: svcCoordinator,
		RouteLease: svcCoordinator, RouteDelegate: svcCoordinator, RouteRevoke: svcCoordinator,
		RouteInbound: svcCoordinator, RouteGateway: svcGateway,
	}
	for pattern, service := range want {
		assert.Equal(t, service, s.patterns[pattern], pattern)
	}
}

func TestCountUnknownPatternPanics(t *testing.T) {
	s := Start(t, InMemory())
	assert.Panics(t, func() { s.Count("POST /oauth2/token") })
	assert.NotPanics(t, func() { s.Count("") })
}

func TestConcurrentRequestsAreAllRecorded(t *testing.T) {
	for _, m := range harnessModes {
		t.Run(m.name, func(t *testing.T) {
			s, hc := m.start(t)
			s.Inject(testCoordRoute, Fault{Status: 503, Times: 10})
			const n = 40
			statuses := make(chan int, n)
			for range n {
				go func() {
					resp, err := hc.Post(s.CoordinatorURL()+"/test/coordinator", "application/json", strings.NewReader("{}"))
					if !assert.NoError(t, err) {
						statuses <- 0
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					statuses <- resp.StatusCode
				}()
			}
			faulted := 0
			for range n {
				if <-statuses == 503 {
					faulted++
				}
			}
			assert.Equal(t, 10, faulted, "Times is exact under concurrency")
			assert.Equal(t, n, s.Count(testCoordRoute))
			assert.Len(t, s.Requests(), n)
		})
	}
}
