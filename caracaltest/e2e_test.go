package caracaltest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// walk runs worked example A (PROTOCOL §10) against s with plain net/http
// and checks what the harness shows of it.
func walk(t *testing.T, s *caracaltest.Stack, hc *http.Client) {
	w := wire{t: t, s: s, hc: hc}
	tok := w.lifecycle()
	root, child, edge := w.narrowed(tok, "reader", "tickets:read")
	m := w.mint(child, edge, "tickets:read")
	require.Equal(t, 200, m.status, m.raw)
	mandate := m.body["access_token"].(string)

	s.ResetRecord()
	r := w.do("GET", s.GatewayURL()+"/tickets/42?page=2", nil,
		"Authorization", "Bearer "+mandate,
		"X-Caracal-Resource", tickets,
		"Baggage", "caracal.hop=1,team=blue",
		"X-Request-Id", "req-walk")
	require.Equal(t, 200, r.status, r.raw)
	var echo caracaltest.EchoResponse
	require.NoError(t, json.Unmarshal([]byte(r.raw), &echo))
	assert.Equal(t, "GET", echo.Method)
	assert.Equal(t, "/tickets/42", echo.Path)
	assert.Equal(t, map[string][]string{"page": {"2"}}, echo.Query)
	assert.Equal(t, "team=blue", echo.Baggage, "caracal.* baggage is stripped")
	assert.Equal(t, "req-walk", echo.RequestID)
	require.NotNil(t, echo.Claims)
	assert.Equal(t, "resource", echo.Claims.Use)
	assert.Equal(t, []string{tickets}, echo.Claims.Aud)
	assert.Equal(t, child, echo.Claims.AgentSessionID)
	assert.Equal(t, edge, echo.Claims.DelegationEdgeID)
	assert.Equal(t, "tickets:read", echo.Claims.Scope)

	// The record: the Gateway request, then what reached the upstream.
	reqs := s.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "gateway", reqs[0].Service)
	assert.Equal(t, caracaltest.RouteGateway, reqs[0].Pattern)
	assert.Equal(t, 200, reqs[0].Status)
	assert.Regexp(t, `^Bearer <use=gateway jti=[0-9a-f-]{36}>$`, reqs[0].Header.Get("Authorization"))
	assert.Equal(t, "upstream", reqs[1].Service)
	assert.Regexp(t, `^Bearer <use=resource jti=[0-9a-f-]{36}>$`, reqs[1].Header.Get("Authorization"))
	assert.Equal(t, 1, s.Count(caracaltest.RouteGateway))

	// A replayed mandate is refused (A6).
	r = w.do("GET", s.GatewayURL()+"/tickets/42", nil, "Authorization", "Bearer "+mandate, "X-Caracal-Resource", tickets)
	assert.Equal(t, 401, r.status)
	assert.Equal(t, "token replay detected", r.body["error_description"])

	// The operator's view and actions.
	info, ok := s.SessionInfo(child)
	require.True(t, ok)
	assert.Equal(t, root, info.ParentID)
	assert.Equal(t, []string{"reader"}, info.Labels)
	assert.Equal(t, "task", info.Lifecycle)
	assert.Equal(t, "active", info.Status)
	e, ok := s.EdgeInfo(edge)
	require.True(t, ok)
	assert.Equal(t, tickets, e.Resource)
	assert.Equal(t, []string{"tickets:read"}, e.Scopes)
	assert.Equal(t, root, e.Source)
	assert.Equal(t, child, e.Target)

	require.NoError(t, s.Suspend(root))
	info, _ = s.SessionInfo(child)
	assert.Equal(t, "suspended", info.Status, "suspension covers the subtree")
	m = w.mint(child, edge, "tickets:read")
	assert.Equal(t, 403, m.status, "a suspended session cannot mint")
	require.NoError(t, s.Resume(root))
	require.NoError(t, s.Terminate(root))
	info, _ = s.SessionInfo(child)
	assert.Equal(t, "terminated", info.Status)
	e, _ = s.EdgeInfo(edge)
	assert.Equal(t, "revoked", e.Status)
	assert.Error(t, s.Terminate(root), "already ended")
	_, ok = s.SessionInfo("no-such-session")
	assert.False(t, ok)
}

func TestProtocolWalk(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s, hc := m.start(t)
			walk(t, s, hc)
		})
	}
	t.Run("synctest", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := caracaltest.Start(t, caracaltest.InMemory())
			walk(t, s, s.HTTPClient())
		})
	})
}

func TestApprovals(t *testing.T) {
	s := caracaltest.Start(t, caracaltest.InMemory())
	w := wire{t: t, s: s, hc: s.HTTPClient()}
	tok := w.lifecycle()
	_, child, edge := w.narrowed(tok, "admin", "tickets:read", "tickets:delete")

	// tickets:delete is tier "high", gated by an operator (the defaults).
	hold := w.mint(child, edge, "tickets:delete")
	require.Equal(t, 401, hold.status, hold.raw)
	assert.Equal(t, "interaction_required", hold.body["error"])
	id := hold.body["approval_id"].(string)

	list := s.Approvals()
	require.Len(t, list, 1)
	assert.Equal(t, id, list[0].ID)
	assert.Equal(t, "pending", list[0].State)
	assert.Equal(t, "high", list[0].Tier)
	assert.Equal(t, "operator", list[0].Approver)

	r := w.do("GET", s.STSURL()+"/approvals/"+id, nil)
	assert.Equal(t, "pending", r.body["state"])
	require.NoError(t, s.Approve(id))
	r = w.do("GET", s.STSURL()+"/approvals/"+id+"?wait=1", nil)
	assert.Equal(t, "approved", r.body["state"])
	ok := w.mint(child, edge, "tickets:delete", "approval_id", id)
	require.Equal(t, 200, ok.status, ok.raw)

	assert.Error(t, s.Approve(id), "a consumed hold cannot be decided again")
	assert.Error(t, s.Reject("00000000-0000-4000-8000-000000000000"))
}

func TestApprovalRejected(t *testing.T) {
	s := caracaltest.Start(t, caracaltest.InMemory())
	w := wire{t: t, s: s, hc: s.HTTPClient()}
	_, child, edge := w.narrowed(w.lifecycle(), "admin", "tickets:delete")
	hold := w.mint(child, edge, "tickets:delete")
	require.Equal(t, 401, hold.status, hold.raw)
	id := hold.body["approval_id"].(string)
	require.NoError(t, s.Reject(id))
	r := w.mint(child, edge, "tickets:delete", "approval_id", id)
	assert.Equal(t, 403, r.status)
	assert.Equal(t, "approval was rejected", r.body["error_description"])
}

func TestFaultsOnProtocolRoutes(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s, hc := m.start(t)
			w := wire{t: t, s: s, hc: hc}

			s.Inject(caracaltest.RouteToken, caracaltest.Fault{Status: 503, Times: 1})
			r := w.token(w.form("scope", "agent:lifecycle", "resource", tickets))
			assert.Equal(t, 503, r.status)
			assert.Equal(t, "sts_unavailable", r.body["error"])
			assert.Equal(t, "injected fault", r.body["error_description"])
			assert.Equal(t, r.header.Get("X-Request-Id"), r.body["requestId"])
			assert.NotEmpty(t, r.body["requestId"])
			tok := w.lifecycle() // the fault was for one call only
			assert.Equal(t, 2, s.Count(caracaltest.RouteToken))

			s.Inject(caracaltest.RouteStart, caracaltest.Fault{Status: 429, Code: "idempotency_receipt_limit_exceeded", Times: 1})
			r = w.coord("POST", "/agents", tok, map[string]any{"application_id": "app-test"})
			assert.Equal(t, 429, r.status)
			assert.Equal(t, map[string]any{"error": "idempotency_receipt_limit_exceeded"}, r.body)
			id := w.start(tok, map[string]any{})

			s.Inject(caracaltest.RouteRetire, caracaltest.Fault{Drop: true, Times: 1})
			req, _ := http.NewRequestWithContext(t.Context(), "DELETE", s.CoordinatorURL()+"/zones/zone-test/agents/"+id, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			// A fresh connection, so net/http cannot retry the dropped DELETE
			// by itself.
			fresh := hc
			if m.name == "loopback" {
				fresh = &http.Client{Transport: &http.Transport{}}
			}
			resp, err := fresh.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			require.Error(t, err)
			info, _ := s.SessionInfo(id)
			assert.Equal(t, "active", info.Status, "the dropped request never reached the route")
			r = w.coord("DELETE", "/agents/"+id, tok, nil)
			assert.Equal(t, 204, r.status, r.raw)

			s.Inject(caracaltest.RouteGateway, caracaltest.Fault{Status: 502, Times: 1})
			r = w.do("GET", s.GatewayURL()+"/tickets/1", nil, "X-Request-Id", "gw-1")
			assert.Equal(t, 502, r.status)
			assert.Equal(t, map[string]any{"error": "sts_unavailable", "error_description": "injected fault", "requestId": "gw-1"}, r.body)
		})
	}
}

func TestFakeClockSweepsLeases(t *testing.T) {
	fc := caracaltest.NewFakeClock(time.Date(2026, 8, 22, 10, 0, 0, 0, time.UTC))
	s := caracaltest.Start(t, caracaltest.InMemory(), caracaltest.WithClock(fc), caracaltest.WithLease(30*time.Second))
	w := wire{t: t, s: s, hc: s.HTTPClient()}
	tok := w.lifecycle()
	svc := w.start(tok, map[string]any{"lifecycle": "service"})
	task := w.start(tok, map[string]any{"ttl_seconds": 60})
	info, _ := s.SessionInfo(svc)
	assert.Equal(t, fc.Now().Add(30*time.Second), info.Deadline)

	fc.Advance(30 * time.Second)
	info, _ = s.SessionInfo(svc)
	assert.Equal(t, "active", info.Status, "the deadline itself is not past")
	fc.Advance(time.Second)
	info, _ = s.SessionInfo(svc)
	assert.Equal(t, "suspended", info.Status, "Advance ran the lease sweeper")

	fc.Set(fc.Now().Add(time.Minute))
	info, _ = s.SessionInfo(task)
	assert.Equal(t, "expired", info.Status, "Set ran the TTL sweeper")
}

func TestRealClockSweeperInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := caracaltest.Start(t, caracaltest.InMemory(), caracaltest.WithLease(5*time.Second))
		w := wire{t: t, s: s, hc: s.HTTPClient()}
		svc := w.start(w.lifecycle(), map[string]any{"lifecycle": "service"})
		time.Sleep(5 * time.Second)
		synctest.Wait()
		info, _ := s.SessionInfo(svc)
		assert.Equal(t, "active", info.Status)
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		info, _ = s.SessionInfo(svc)
		assert.Equal(t, "suspended", info.Status, "the once-a-second sweeper ran on the bubble's clock")
	})
}

func TestNewClientSpawnsInMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := caracaltest.Start(t, caracaltest.InMemory())
		c, err := s.NewClient()
		require.NoError(t, err)
		sess, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
		require.NoError(t, err)
		info, ok := s.SessionInfo(sess.ID())
		require.True(t, ok)
		assert.Equal(t, []string{"dispatcher"}, info.Labels)
		require.NoError(t, c.Close(t.Context()))
		info, _ = s.SessionInfo(sess.ID())
		assert.NotEqual(t, "active", info.Status, "Close retired the session")
		for _, r := range s.Requests() {
			assert.NotContains(t, strings.Join(r.Form["client_secret"], ""), s.Application().Secret)
			assert.NotContains(t, string(r.Body), s.Application().Secret)
		}
	})
}

func TestResourcesWithTheirOwnUpstreams(t *testing.T) {
	ext := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "wiki:"+r.URL.Path)
	}))
	defer ext.Close()
	docs := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "docs:"+r.URL.Path)
	})
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s, hc := m.start(t,
				caracaltest.WithResource(caracaltest.Resource{Identifier: "resource://docs", Scopes: []string{"docs:read"}, Upstream: docs}),
				caracaltest.WithResource(caracaltest.Resource{Identifier: "resource://wiki", Scopes: []string{"wiki:read"}, UpstreamURL: ext.URL}),
				caracaltest.WithGrant("resource://docs", "app-test", map[string][]string{"reader": {"docs:read"}}),
				caracaltest.WithGrant("resource://wiki", "app-test", map[string][]string{"reader": {"wiki:read"}}),
			)
			assert.Equal(t, ext.URL, s.UpstreamURL("resource://wiki"))
			w := wire{t: t, s: s, hc: hc}
			tok := w.lifecycle()
			for _, c := range []struct{ resource, scope, want string }{
				{"resource://docs", "docs:read", "docs:/a/b"},
				{"resource://wiki", "wiki:read", "wiki:/a/b"},
			} {
				_, child, edge := w.narrowedOn(tok, c.resource, "reader", c.scope)
				m := w.mintOn(c.resource, child, edge, c.scope)
				require.Equal(t, 200, m.status, m.raw)
				r := w.do("GET", s.GatewayURL()+"/a/b", nil,
					"Authorization", "Bearer "+m.body["access_token"].(string), "X-Caracal-Resource", c.resource)
				require.Equal(t, 200, r.status, r.raw)
				assert.Equal(t, c.want, r.raw)
			}
			// The harness serves an in-process upstream at its own URL too.
			r := w.do("GET", s.UpstreamURL("resource://docs")+"/direct", nil)
			assert.Equal(t, "docs:/direct", r.raw)
		})
	}
}

// TestNonCanonicalHeaderKeys sends header keys as a client may put them in
// the map, lower-cased: net/http sends them as they are and a server
// canonicalises them, so the stack answers the same in memory as over
// loopback, in both directions.
func TestNonCanonicalHeaderKeys(t *testing.T) {
	docs := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["x-served-by"] = []string{"docs:" + r.Header.Get("X-Team")}
		_, _ = io.WriteString(w, "ok")
	})
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s, hc := m.start(t,
				caracaltest.WithResource(caracaltest.Resource{Identifier: "resource://docs", Scopes: []string{"docs:read"}, Upstream: docs}),
				caracaltest.WithGrant("resource://docs", "app-test", map[string][]string{"reader": {"docs:read"}}),
			)
			w := wire{t: t, s: s, hc: hc}
			_, child, edge := w.narrowedOn(w.lifecycle(), "resource://docs", "reader", "docs:read")
			send := func(extra http.Header) (*http.Response, string) {
				m := w.mintOn("resource://docs", child, edge, "docs:read")
				require.Equal(t, 200, m.status, m.raw)
				req, err := http.NewRequestWithContext(t.Context(), "GET", s.GatewayURL()+"/a", nil)
				require.NoError(t, err)
				req.Header["authorization"] = []string{"Bearer " + m.body["access_token"].(string)}
				req.Header["x-caracal-resource"] = []string{"resource://docs"}
				for k, v := range extra {
					req.Header[k] = v
				}
				resp, err := hc.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				return resp, string(b)
			}

			resp, body := send(http.Header{"x-team": {"blue"}})
			require.Equal(t, 200, resp.StatusCode, body)
			assert.Equal(t, "docs:blue", resp.Header.Get("X-Served-By"))

			resp, body = send(http.Header{"x-caracal-client-id": {"app-test"}})
			assert.Equal(t, 400, resp.StatusCode, body)
			assert.Contains(t, body, "client identity derives from the bearer token")
		})
	}
}
