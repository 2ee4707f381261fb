package caracaltest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/wire"
)

// writerChain is example C's shape: a writer child holding an edge for
// tickets:write.
func (env *stsEnv) writerChain() (*session, *edge) {
	root, child := env.session(exApp, "dispatcher"), env.session(exApp, "writer")
	e := env.edge(root, child, nil, []string{"tickets:read", "tickets:write"},
		wire.Constraints{Resources: []string{exResource}}, 8*time.Hour)
	return child, e
}

func (env *stsEnv) approvalStatus(t *testing.T, id, query string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(env.sts.URL + "/approvals/" + id + query)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(readBody(t, resp)), &m))
	return resp.StatusCode, m
}

func requireHold(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	assert.Equal(t, `Bearer error="interaction_required"`, resp.Header.Get("WWW-Authenticate"))
	m := requireError(t, resp, 401, "interaction_required", "Human approval required for this request")
	assert.Equal(t, "human_approval", m["approval_type"])
	assert.Equal(t, "pending", m["state"])
	assert.Regexp(t, `^[0-9a-f]{64}$`, m["binding"])
	id, err := uuid.Parse(m["approval_id"].(string))
	require.NoError(t, err)
	assert.Equal(t, uuid.Version(4), id.Version())
	return m
}

// TestExampleC reproduces PROTOCOL §10 C: hold, wait, approve, retry,
// re-issue, consumed.
func TestExampleC(t *testing.T) {
	env := newSTSEnv(t)
	child, e := env.writerChain()
	env.clock.Advance(5 * time.Second)

	// C1
	hold := requireHold(t, env.post(t, mintForm(child, e, "tickets:write")))
	id := hold["approval_id"].(string)
	assert.Equal(t, "high", hold["tier"])
	assert.Equal(t, "2026-08-22T14:00:05Z", hold["approval_expires_at"], "operator class: 4 h")
	assert.Len(t, hold, 9)
	// Repeating the same mint returns the same hold.
	again := requireHold(t, env.post(t, mintForm(child, e, "tickets:write")))
	assert.Equal(t, id, again["approval_id"])
	assert.Equal(t, hold["binding"], again["binding"])
	// A retry naming the pending hold is held again.
	f := mintForm(child, e, "tickets:write")
	f.Set("approval_id", id)
	assert.Equal(t, id, requireHold(t, env.post(t, f))["approval_id"])

	// C2
	status, body := env.approvalStatus(t, id, "?wait=0")
	assert.Equal(t, 200, status)
	assert.Equal(t, map[string]any{"id": id, "state": "pending", "expires_at": "2026-08-22T14:00:05Z"}, body)
	require.NoError(t, env.w.decideApproval(id, true))
	_, body = env.approvalStatus(t, id, "?wait=25")
	assert.Equal(t, "approved", body["state"])
	assert.Error(t, env.w.decideApproval(id, false), "decided holds are final")

	// C3
	first := env.token(t, f)
	fc := claims(t, first.AccessToken)
	assert.Equal(t, "tickets:write", fc["scope"])
	assert.Equal(t, "gateway", fc["use"])
	_, body = env.approvalStatus(t, id, "")
	assert.Equal(t, "consumed", body["state"])
	// A second identical retry within 2 minutes: re-issued for the same
	// authority record.
	env.clock.Advance(119 * time.Second)
	second := env.token(t, f)
	sc := claims(t, second.AccessToken)
	assert.Equal(t, fc["sid"], sc["sid"])
	assert.NotEqual(t, fc["jti"], sc["jti"])
	assert.Equal(t, fc["exp"], sc["exp"])
	assert.Equal(t, first.ExpiresIn-119, second.ExpiresIn)
	// Later: consumed.
	env.clock.Advance(2 * time.Second)
	requireError(t, env.post(t, f), 409, "approval_consumed", "approval already used; another request consumed it")
	// From another session or edge: the bindings do not match.
	other, oe := env.writerChain()
	g := mintForm(other, oe, "tickets:write")
	g.Set("approval_id", id)
	requireError(t, env.post(t, g), 401, "access_denied", "approval not found or bindings do not match")

	list := env.w.approvalList()
	require.Len(t, list, 1)
	assert.Equal(t, ApprovalInfo{ID: id, State: "consumed", Tier: "high", Approver: "operator", Binding: hold["binding"].(string),
		ExpiresAt: exStart.Add(5*time.Second + 4*time.Hour), Scopes: []string{"tickets:write"}, Resource: exResource,
		SessionID: child.id}, list[0])
}

func TestApprovalOutcomes(t *testing.T) {
	env := newSTSEnv(t)
	holdFor := func(t *testing.T, child *session, e *edge) (string, url.Values) {
		m := requireHold(t, env.post(t, mintForm(child, e, "tickets:write")))
		f := mintForm(child, e, "tickets:write")
		f.Set("approval_id", m["approval_id"].(string))
		return m["approval_id"].(string), f
	}
	t.Run("rejected", func(t *testing.T) {
		child, e := env.writerChain()
		id, f := holdFor(t, child, e)
		require.NoError(t, env.w.decideApproval(id, false))
		requireError(t, env.post(t, f), 403, "access_denied", "approval was rejected")
		_, body := env.approvalStatus(t, id, "")
		assert.Equal(t, "rejected", body["state"])
		// A fresh mint raises a new hold.
		next := requireHold(t, env.post(t, mintForm(child, e, "tickets:write")))
		assert.NotEqual(t, id, next["approval_id"])
	})
	t.Run("expired", func(t *testing.T) {
		child, e := env.writerChain()
		id, f := holdFor(t, child, e)
		env.clock.Advance(4 * time.Hour)
		requireError(t, env.post(t, f), 401, "access_denied", "approval expired")
		_, body := env.approvalStatus(t, id, "?wait=5")
		assert.Equal(t, "expired", body["state"])
		assert.Error(t, env.w.decideApproval(id, true))
	})
	t.Run("retry without approval_id consumes the approved hold", func(t *testing.T) {
		child, e := env.writerChain()
		id, _ := holdFor(t, child, e)
		require.NoError(t, env.w.decideApproval(id, true))
		env.token(t, mintForm(child, e, "tickets:write"))
		_, body := env.approvalStatus(t, id, "")
		assert.Equal(t, "consumed", body["state"])
		// The next mint is held again.
		assert.NotEqual(t, id, requireHold(t, env.post(t, mintForm(child, e, "tickets:write")))["approval_id"])
	})
	t.Run("approved hold left unconsumed by a later denial", func(t *testing.T) {
		child, e := env.writerChain()
		id, f := holdFor(t, child, e)
		require.NoError(t, env.w.decideApproval(id, true))
		require.NoError(t, env.w.suspend(child.id))
		requireError(t, env.post(t, f), 403, "access_denied", "delegation target inactive or unauthorized")
		require.NoError(t, env.w.resume(child.id))
		env.token(t, f)
	})
	t.Run("a consumed hold whose authority record was revoked is not re-issued", func(t *testing.T) {
		child, e := env.writerChain()
		id, f := holdFor(t, child, e)
		require.NoError(t, env.w.decideApproval(id, true))
		sid := claims(t, env.token(t, f).AccessToken)["sid"].(string)
		env.w.mu.Lock()
		env.w.revokeRecord(sid, "logout")
		env.w.mu.Unlock()
		requireError(t, env.post(t, f), 409, "approval_consumed", "approval already used; another request consumed it")
	})
	t.Run("resources differing only in case share one hold", func(t *testing.T) {
		child, e := env.writerChain()
		id, _ := holdFor(t, child, e)
		f := mintForm(child, e, "tickets:write")
		f.Add("resource", strings.ToUpper(exResource))
		assert.Equal(t, id, requireHold(t, env.post(t, f))["approval_id"])
	})
	t.Run("unknown approval id", func(t *testing.T) {
		child, e := env.writerChain()
		f := mintForm(child, e, "tickets:write")
		f.Set("approval_id", uuid.NewString())
		requireError(t, env.post(t, f), 401, "access_denied", "approval not found or bindings do not match")
	})
	t.Run("ungated scopes and lifecycle tokens are never held", func(t *testing.T) {
		child, e := env.writerChain()
		env.token(t, mintForm(child, e, "tickets:read"))
		env.token(t, lifecycleForm())
	})
	t.Run("decide unknown", func(t *testing.T) {
		assert.Error(t, env.w.decideApproval(uuid.NewString(), true))
	})
}

func TestApprovalTiers(t *testing.T) {
	cases := []struct {
		name  string
		risk  []riskTag
		tiers []ApprovalTier
		ttl   time.Duration
		tier  string
		deny  string
	}{
		{name: "subject default", risk: []riskTag{{"tickets:write", "high"}},
			tiers: []ApprovalTier{{Tier: "high", Approver: "subject"}}, ttl: 15 * time.Minute, tier: "high"},
		{name: "declared ttl clamped up to 60 s", risk: []riskTag{{"tickets:write", "high"}},
			tiers: []ApprovalTier{{Tier: "high", Approver: "any", TTL: 10 * time.Second}}, ttl: time.Minute, tier: "high"},
		{name: "declared ttl clamped to the class max", risk: []riskTag{{"tickets:write", "high"}},
			tiers: []ApprovalTier{{Tier: "high", Approver: "subject", TTL: 48 * time.Hour}}, ttl: 24 * time.Hour, tier: "high"},
		{name: "tiers merged, smallest ttl", risk: []riskTag{{"tickets:write", "high"}, {"tickets:read", "audit"}},
			tiers: []ApprovalTier{{Tier: "high", Approver: "operator", TTL: time.Hour}, {Tier: "audit", Approver: "any", TTL: 30 * time.Minute}},
			ttl:   30 * time.Minute, tier: "audit,high"},
		{name: "two scopes on one tier name it once", risk: []riskTag{{"tickets:write", "high"}, {"tickets:read", "high"}},
			tiers: []ApprovalTier{{Tier: "high", Approver: "any"}}, ttl: 15 * time.Minute, tier: "high"},
		{name: "operator and subject", risk: []riskTag{{"tickets:write", "high"}, {"tickets:read", "pii"}},
			tiers: []ApprovalTier{{Tier: "high", Approver: "operator"}, {Tier: "pii", Approver: "subject"}},
			deny:  "approval requires separate operator and subject decisions"},
		{name: "malformed approval data", risk: []riskTag{{"tickets:write", "high"}},
			tiers: []ApprovalTier{{Tier: "high", Approver: "boss"}}, deny: "policy denied (malformed_approval_data)"},
		{name: "malformed risk data", risk: []riskTag{{"tickets:write", ""}}, deny: "policy denied (malformed_risk_data)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newSTSEnv(t, func(c *worldConfig) { c.Policy.Risk, c.Policy.ApprovalTiers = tc.risk, tc.tiers })
			child, e := env.writerChain()
			resp := env.post(t, mintForm(child, e, "tickets:read tickets:write"))
			if tc.deny != "" {
				requireError(t, resp, 403, "access_denied", tc.deny)
				return
			}
			m := requireHold(t, resp)
			assert.Equal(t, tc.tier, m["tier"])
			assert.Equal(t, wire.STSTime(exStart.Add(tc.ttl)), m["approval_expires_at"])
		})
	}
}

func TestApprovalStatusErrors(t *testing.T) {
	env := newSTSEnv(t)
	child, e := env.writerChain()
	id := requireHold(t, env.post(t, mintForm(child, e, "tickets:write")))["approval_id"].(string)
	cases := []struct {
		name, id, query string
		status          int
		body            map[string]any
	}{
		{"negative wait", id, "?wait=-1", 400, map[string]any{"error": "invalid_token", "error_description": "invalid wait"}},
		{"text wait", id, "?wait=soon", 400, map[string]any{"error": "invalid_token", "error_description": "invalid wait"}},
		{"empty wait", id, "?wait=", 400, map[string]any{"error": "invalid_token", "error_description": "invalid wait"}},
		{"unknown uuid", uuid.NewString(), "", 404, map[string]any{"error": "resource_not_found", "error_description": "approval not found"}},
		{"not a uuid", "hold-1", "", 404, map[string]any{"error": "resource_not_found", "error_description": "approval not found"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := env.approvalStatus(t, tc.id, tc.query)
			assert.Equal(t, tc.status, status)
			assert.Equal(t, tc.body, body)
		})
	}
}

// TestApprovalLongPoll runs the long poll on the bubble's fake clock.
func TestApprovalLongPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := exampleConfig()
		cfg.Resources[0].Upstream = http.NotFoundHandler()
		w, err := newWorld(cfg)
		require.NoError(t, err)
		env := &stsEnv{w: w, clock: NewFakeClock(time.Now())}
		root, child := env.session(exApp), env.session(exApp, "writer")
		e := env.edge(root, child, nil, []string{"tickets:write"}, wire.Constraints{Resources: []string{exResource}}, time.Hour)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/oauth/2/token", strings.NewReader(mintForm(child, e, "tickets:write").Encode()))
		req.Header.Set("Content-Type", formType)
		w.handleToken(rec, req)
		require.Equal(t, 401, rec.Code, rec.Body.String())
		var hold map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &hold))
		id := hold["approval_id"].(string)

		poll := func(ctx context.Context, query string) (*httptest.ResponseRecorder, time.Duration) {
			start := time.Now()
			req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/approvals/"+id+query, nil)
			req.SetPathValue("id", id)
			rec := httptest.NewRecorder()
			w.handleApproval(rec, req)
			return rec, time.Since(start)
		}
		state := func(rec *httptest.ResponseRecorder) string {
			var st wire.ApprovalStatus
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
			return st.State
		}

		rec, took := poll(t.Context(), "?wait=10")
		assert.Equal(t, "pending", state(rec))
		assert.Equal(t, 10*time.Second, took)

		rec, took = poll(t.Context(), "?wait=18446744073709551615")
		assert.Equal(t, "pending", state(rec))
		assert.Equal(t, 25*time.Second, took, "clamped to 25 s")

		rec, took = poll(t.Context(), "")
		assert.Equal(t, "pending", state(rec))
		assert.Zero(t, took)

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan time.Duration)
		go func() {
			_, took := poll(ctx, "?wait=25")
			done <- took
		}()
		synctest.Wait()
		cancel()
		assert.Zero(t, <-done, "a cancelled poll returns at once")

		var decided *httptest.ResponseRecorder
		go func() {
			var took time.Duration
			decided, took = poll(t.Context(), "?wait=25")
			done <- took
		}()
		synctest.Wait()
		time.Sleep(3 * time.Second) // fake time: the poll is parked
		require.NoError(t, w.decideApproval(id, true))
		assert.Equal(t, 3*time.Second, <-done, "the decision wakes the poll")
		assert.Equal(t, "approved", state(decided))
	})
}

// TestApprovalLongPollWakesOnFakeClockExpiry: on a FakeClock the hold's
// expiry comes from Advance, not from the passing of real time; a parked
// poll must answer "expired" then, not at the end of its wait.
func TestApprovalLongPollWakesOnFakeClockExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := NewFakeClock(exStart)
		cfg := exampleConfig()
		cfg.Clock = fc
		cfg.Resources[0].Upstream = http.NotFoundHandler()
		w, err := newWorld(cfg)
		require.NoError(t, err)
		defer fc.addSweeper(w.sweep)() // as a Stack on fc does
		env := &stsEnv{w: w, clock: fc}
		root, child := env.session(exApp), env.session(exApp, "writer")
		e := env.edge(root, child, nil, []string{"tickets:write"}, wire.Constraints{Resources: []string{exResource}}, 24*time.Hour)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/oauth/2/token", strings.NewReader(mintForm(child, e, "tickets:write").Encode()))
		req.Header.Set("Content-Type", formType)
		w.handleToken(rec, req)
		require.Equal(t, 401, rec.Code, rec.Body.String())
		var hold map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &hold))
		id := hold["approval_id"].(string)

		type result struct {
			took  time.Duration
			state string
		}
		done := make(chan result)
		go func() {
			start := time.Now()
			req := httptest.NewRequest(http.MethodGet, "/approvals/"+id+"?wait=25", nil)
			req.SetPathValue("id", id)
			rec := httptest.NewRecorder()
			w.handleApproval(rec, req)
			var st wire.ApprovalStatus
			assert.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
			done <- result{time.Since(start), st.State}
		}()
		synctest.Wait() // the poll is parked
		fc.Advance(5 * time.Hour)
		got := <-done
		assert.Equal(t, "expired", got.state)
		assert.Zero(t, got.took, "Advance past the hold's expiry wakes the poll")
	})
}
