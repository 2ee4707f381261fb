package caracal

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/envelope"
	"github.com/caracal-go/caracal/internal/wire"
)

func planClient(resources ...string) *Client {
	return &Client{cfg: &Config{ZoneID: "z", ApplicationID: "app", Resources: resources}, life: context.Background()}
}

var root = &Agent{zoneID: "z", applicationID: "app", sessionID: "P"}

func TestPlanNarrowDefaults(t *testing.T) {
	c := planClient("resource://tickets")
	p, err := c.planNarrow(Grant.Narrow([]string{"tickets:read", " tickets:read", "a:b"}, "", Constraints{}, 0), root, 10*time.Minute)
	require.NoError(t, err)
	assert.Equal(t, []string{"a:b", "tickets:read"}, p.scopes)
	assert.Equal(t, "resource://tickets", p.resource, "the only configured resource")
	assert.Equal(t, 600, p.ttlSeconds, "the child's TTL")
	req := p.request(root, "C", "app")
	assert.Equal(t, wire.CreateDelegationRequest{SourceSessionID: "P", TargetSessionID: "C", IssuerApplicationID: "app",
		ReceiverApplicationID: "app", ResourceID: "resource://tickets", Scopes: []string{"a:b", "tickets:read"}, TTLSeconds: 600}, req)
}

func TestPlanNarrowRefusals(t *testing.T) {
	c := planClient("resource://tickets", "resource://ledger")
	past := time.Now().Add(-time.Minute)
	for name, tc := range map[string]struct {
		g    Authority
		want error
		msg  string
	}{
		"budget":            {Grant.Narrow([]string{"s"}, "r", Constraints{Budget: 5}, time.Minute), ErrBudgetUnsupported, "budget"},
		"no scopes":         {Grant.Narrow([]string{" "}, "r", Constraints{}, time.Minute), ErrInvalidGrant, "at least one scope"},
		"lifecycle scope":   {Grant.Narrow([]string{"agent:lifecycle"}, "r", Constraints{}, time.Minute), ErrInvalidGrant, "cannot be delegated"},
		"ambiguous":         {Grant.Narrow([]string{"s"}, "", Constraints{}, time.Minute), ErrInvalidGrant, "2 configured resources: resource://tickets, resource://ledger"},
		"hops":              {Grant.Narrow([]string{"s"}, "r", Constraints{MaxHops: 11}, time.Minute), ErrInvalidGrant, "MaxHops 11"},
		"negative ttl":      {Grant.Narrow([]string{"s"}, "r", Constraints{}, -time.Second), ErrInvalidGrant, "TTL"},
		"long ttl":          {Grant.Narrow([]string{"s"}, "r", Constraints{}, 25*time.Hour), ErrInvalidGrant, "TTL"},
		"ttl past a day":    {Grant.Narrow([]string{"s"}, "r", Constraints{}, 24*time.Hour+time.Second), ErrInvalidGrant, "TTL"},
		"past expiry":       {Grant.Narrow([]string{"s"}, "r", Constraints{ExpiresAt: past}, 0), ErrInvalidGrant, "not in the future"},
		"expiry too close":  {Grant.Narrow([]string{"s"}, "r", Constraints{ExpiresAt: time.Now().Add(500 * time.Millisecond)}, 0), ErrInvalidGrant, "less than a second away"},
		"empty listed":      {Grant.Narrow([]string{"s"}, "r", Constraints{Resources: []string{""}}, time.Minute), ErrInvalidGrant, "empty resource"},
		"resource not list": {Grant.Narrow([]string{"s"}, "r", Constraints{Resources: []string{"q"}}, time.Minute), ErrInvalidGrant, "not among"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := c.planNarrow(tc.g, root, time.Hour)
			require.ErrorIs(t, err, tc.want)
			assert.ErrorContains(t, err, tc.msg)
		})
	}
	_, err := c.planNarrow(Grant.Narrow([]string{"s"}, "r", Constraints{}, 0), root, 0)
	assert.ErrorContains(t, err, "needs a TTL", "Delegate has no child TTL to default to")
	p, err := c.planNarrow(Grant.Narrow([]string{"s"}, "r", Constraints{}, 24*time.Hour), root, 0)
	require.NoError(t, err, "a day is the longest TTL")
	assert.Equal(t, 86400, p.ttlSeconds)

	// At most 64 resources (PROTOCOL §6.4), counted once each.
	many := make([]string, 65)
	for i := range many {
		many[i] = fmt.Sprintf("resource://r%d", i)
	}
	_, err = c.planNarrow(Grant.Narrow([]string{"s"}, "", Constraints{Resources: many}, time.Minute), root, 0)
	assert.ErrorIs(t, err, ErrInvalidGrant)
	assert.ErrorContains(t, err, "at most 64 resources")
	p, err = c.planNarrow(Grant.Narrow([]string{"s"}, "", Constraints{Resources: append(many[:64:64], many[0])}, time.Minute), root, 0)
	require.NoError(t, err)
	assert.Len(t, p.resources, 64)
}

func TestPlanNarrowConstraints(t *testing.T) {
	c := planClient()
	exp := time.Date(2099, 1, 2, 3, 4, 5, 0, time.UTC)
	p, err := c.planNarrow(Grant.Narrow([]string{"s"}, "", Constraints{MaxHops: 2, Resources: []string{"a", " b", "a"}, ExpiresAt: exp}, 0), root, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, p.resources)
	assert.Zero(t, p.ttlSeconds, "an explicit expiry and no TTL sends no TTL")
	req := p.request(&Agent{sessionID: "P", applicationID: "app", delegationID: "E0"}, "C", "other")
	assert.Equal(t, "E0", req.ParentEdgeID)
	assert.Equal(t, "other", req.ReceiverApplicationID)
	assert.Empty(t, req.ResourceID)
	assert.Equal(t, &wire.Constraints{MaxHops: 2, Resources: []string{"a", "b"}, ExpiresAt: "2099-01-02T03:04:05.000Z"}, req.Constraints)
}

func TestPlanNarrowUnderKnownParent(t *testing.T) {
	c := planClient("resource://tickets")
	parent := &Agent{zoneID: "z", applicationID: "app", sessionID: "P", delegationID: "E", hop: 1, edge: &edgeGrant{
		scopes: []string{"tickets:read", "tickets:write"}, resources: []string{"resource://tickets"},
		expiresAt: time.Now().Add(10 * time.Minute), maxHops: 3, ttl: 10 * time.Minute, depth: 1,
	}}
	narrow := func(scopes []string, res string, k Constraints, ttl time.Duration) error {
		_, err := c.planNarrow(Grant.Narrow(scopes, res, k, ttl), parent, time.Hour)
		return err
	}
	require.NoError(t, narrow([]string{"tickets:read"}, "", Constraints{MaxHops: 2}, 5*time.Minute))
	assert.ErrorContains(t, narrow([]string{"tickets:delete"}, "", Constraints{}, time.Minute), "scope tickets:delete is wider")
	assert.ErrorContains(t, narrow([]string{"tickets:read"}, "resource://ledger", Constraints{}, time.Minute), "outside the parent's delegation")
	assert.ErrorContains(t, narrow([]string{"tickets:read"}, "", Constraints{MaxHops: 3}, time.Minute), "MaxHops 3 is wider")
	assert.ErrorContains(t, narrow([]string{"tickets:read"}, "", Constraints{MaxHops: 2}, 20*time.Minute), "longer than the parent's delegation TTL")
	assert.ErrorContains(t, narrow([]string{"tickets:read"}, "", Constraints{MaxHops: 2, ExpiresAt: time.Now().Add(time.Hour)}, 0), "after the parent's delegation expiry")
	// Two edges deep, an edge mints only with MaxHops >= 2 (PROTOCOL §6.6).
	assert.ErrorContains(t, narrow([]string{"tickets:read"}, "", Constraints{}, time.Minute), "an edge 2 deep can mint only with MaxHops >= 2")

	// A default TTL is fitted inside the parent instead of refused.
	p, err := c.planNarrow(Grant.Narrow([]string{"tickets:read"}, "", Constraints{MaxHops: 2}, 0), parent, time.Hour)
	require.NoError(t, err)
	assert.LessOrEqual(t, p.ttlSeconds, 600)
	assert.GreaterOrEqual(t, p.ttlSeconds, 590)

	parent.edge.maxHops = 2 // room for a child edge, but not for one that mints
	assert.ErrorContains(t, narrow([]string{"tickets:read"}, "", Constraints{}, time.Minute),
		"leaves no usable hop for an edge 2 deep; give the parent's Grant.Narrow Constraints.MaxHops >= 3 and this one 2")
	parent.edge.maxHops = 0 // server default 1
	assert.ErrorContains(t, narrow([]string{"tickets:read"}, "", Constraints{}, time.Minute), "leaves no usable hop")

	// An edge of unknown depth (its hop count is no measure of it): only
	// the Coordinator's rule 4 is checked.
	parent.edge.depth, parent.hop = 0, 4
	assert.ErrorContains(t, narrow([]string{"tickets:read"}, "", Constraints{}, time.Minute), "allows no delegation under it")
	parent.edge.maxHops = 3
	p, err = c.planNarrow(Grant.Narrow([]string{"tickets:read"}, "", Constraints{MaxHops: 2}, time.Minute), parent, time.Hour)
	require.NoError(t, err)
	assert.Zero(t, p.depth, "unknown")
	assert.ErrorContains(t, narrow([]string{"tickets:read"}, "", Constraints{MaxHops: 3}, time.Minute), "MaxHops 3 is wider")
}

// A default TTL fitted inside a parent delegation with no TTL of its own
// ends at least a second before the parent's end as this process saw it
// when planning: the Coordinator adds the whole seconds to a later now.
func TestPlanNarrowFittedDefaultLeavesASecond(t *testing.T) {
	c := planClient("resource://tickets")
	before := time.Now()
	end := before.Add(10*time.Minute + 500*time.Millisecond)
	parent := &Agent{zoneID: "z", applicationID: "app", sessionID: "P", delegationID: "E", hop: 1, edge: &edgeGrant{
		scopes: []string{"tickets:read"}, resources: []string{"resource://tickets"}, expiresAt: end, maxHops: 3, depth: 1,
	}}
	p, err := c.planNarrow(Grant.Narrow([]string{"tickets:read"}, "", Constraints{MaxHops: 2}, 0), parent, time.Hour)
	require.NoError(t, err)
	sent := time.Duration(p.ttlSeconds) * time.Second
	assert.False(t, before.Add(sent+time.Second).After(end), "a TTL of %v leaves less than a second before the parent's end", sent)
	assert.Greater(t, p.ttlSeconds, 590)
}

func TestNarrowCopiesSlices(t *testing.T) {
	scopes := []string{"a"}
	res := []string{"r"}
	g := Grant.Narrow(scopes, "r", Constraints{Resources: res}, time.Minute)
	scopes[0], res[0] = "changed", "changed"
	assert.Equal(t, []string{"a"}, g.scopes)
	assert.Equal(t, []string{"r"}, g.constraints.Resources)
	assert.Equal(t, "inherit", Authority{}.String())
	assert.Equal(t, "none", Grant.None().String())
	assert.Equal(t, "narrow(a on r, ttl 1m0s)", g.String())
}

func TestSpawnOptionValidation(t *testing.T) {
	for name, opt := range map[string]SpawnOption{
		"empty label":    WithLabels("ok", " "),
		"long label":     WithLabels(string(make([]byte, 65))),
		"long in UTF-16": WithLabels(strings.Repeat("\U0001F600", 33)), // 33 characters, 66 code units
		"ttl":            WithTTL(0),
		"ttl too long":   WithTTL(25 * time.Hour),
		"nil parent":     WithParent(nil),
		"key space":      WithIdempotencyKey(" k"),
		"key control":    WithIdempotencyKey("k\n"),
		"key long":       WithIdempotencyKey(string(make([]byte, 256))),
		// A header's bytes past ASCII are read by the Coordinator as Latin-1:
		// it would trim and measure another key than the one sent.
		"key non-ASCII":  WithIdempotencyKey("\u00a0k"),
		"key BOM":        WithIdempotencyKey("k\ufeff"),
		"trace id":       WithTraceID("00000000000000000000000000000000"),
		"trace id upper": WithTraceID("ABCDEF0123456789ABCDEF0123456789"),
	} {
		cfg := newSpawnConfig([]SpawnOption{opt})
		assert.ErrorIs(t, cfg.err, ErrInvalidRequest, name)
	}
	cfg := newSpawnConfig([]SpawnOption{WithLabels(strings.Repeat("\U0001F600", 32), strings.Repeat("é", 64))})
	assert.NoError(t, cfg.err, "64 code units each")
	cfg = newSpawnConfig([]SpawnOption{WithLabels(strings.Repeat("x", 1<<20))})
	assert.Less(t, len(cfg.err.Error()), 300, "the label is quoted in part")
	many := make([]string, 33)
	for i := range many {
		many[i] = "l"
	}
	assert.ErrorContains(t, newSpawnConfig([]SpawnOption{WithLabels(many...)}).err, "at most 32 labels")
	cfg = newSpawnConfig([]SpawnOption{WithLabels(" a ", "b"), WithLabels("c"), nil, WithTTL(90 * time.Second)})
	require.NoError(t, cfg.err)
	assert.Equal(t, []string{"a", "b", "c"}, cfg.labels)
	assert.Equal(t, 90*time.Second, cfg.ttl)

	m := map[string]any{"task": "x"}
	cfg = newSpawnConfig([]SpawnOption{WithMetadata(m)})
	m["task"] = "changed"
	assert.Equal(t, "x", cfg.metadata["task"])
}

func TestResolveParent(t *testing.T) {
	c := planClient()
	p := &Agent{zoneID: "z", applicationID: "app", sessionID: "P"}
	q := &Agent{zoneID: "z", applicationID: "app", sessionID: "Q"}
	ctx := NewContext(t.Context(), p)

	got, err := c.resolveParent(ctx, spawnConfig{})
	require.NoError(t, err)
	assert.Same(t, p, got)
	got, err = c.resolveParent(t.Context(), spawnConfig{parent: q})
	require.NoError(t, err)
	assert.Same(t, q, got)
	got, err = c.resolveParent(ctx, spawnConfig{parent: p})
	require.NoError(t, err)
	assert.Same(t, p, got)
	got, err = c.resolveParent(ctx, spawnConfig{noParent: true})
	require.NoError(t, err)
	assert.Nil(t, got)

	_, err = c.resolveParent(ctx, spawnConfig{parent: q})
	assert.ErrorContains(t, err, "WithParent names session Q but the context binds session P")
	_, err = c.resolveParent(ctx, spawnConfig{parent: q, noParent: true})
	assert.ErrorContains(t, err, "contradict")
	foreign := NewContext(t.Context(), &Agent{zoneID: "z", applicationID: "other", sessionID: "F"})
	_, err = c.resolveParent(foreign, spawnConfig{})
	assert.ErrorContains(t, err, "belongs to application other")
	anon := NewContext(t.Context(), &Agent{token: pinned("t")})
	_, err = c.resolveParent(anon, spawnConfig{})
	assert.ErrorContains(t, err, "no session id")
}

func TestHeadersInboundAgent(t *testing.T) {
	c := planClient()
	_, err := c.Headers(t.Context())
	assert.ErrorIs(t, err, ErrNoSession)

	a := &Agent{sessionID: "S", delegationID: "E", parentDelegationID: "E0", subjectRecordID: "R", hop: 2,
		traceID: "5f1c2b3a4d5e6f708192a3b4c5d6e7f8", traceFlags: "00", traceState: "k=v",
		baggage: []envelope.Member{{Key: "tenant", Value: "acme corp"}}, token: pinned("inbound-token")}
	h, err := c.Headers(NewContext(t.Context(), a))
	require.NoError(t, err)
	assert.Equal(t, "Bearer inbound-token", h.Get("Authorization"))
	assert.Regexp(t, `^00-5f1c2b3a4d5e6f708192a3b4c5d6e7f8-[0-9a-f]{16}-00$`, h.Get("Traceparent"))
	assert.Equal(t, "k=v", h.Get("Tracestate"))
	assert.Equal(t, "caracal.agent_session=S,caracal.delegation_edge=E,caracal.hop=2,caracal.parent_edge=E0,caracal.session=R,tenant=acme%20corp", h.Get("Baggage"))

	// A trace-only inbound context: no bearer, no caracal members.
	h, err = c.Headers(NewContext(t.Context(), &Agent{traceID: "5f1c2b3a4d5e6f708192a3b4c5d6e7f8"}))
	require.NoError(t, err)
	assert.Empty(t, h.Values("Authorization"))
	assert.Empty(t, h.Values("Baggage"))
	assert.NotEmpty(t, h.Get("Traceparent"))
}

// FuzzNarrowNeverWidens checks the local narrowing rules: whatever the
// parent's known edge and the requested grant, a plan that passes is inside
// the parent's edge (scopes, resources, hops, TTL, expiry).
func FuzzNarrowNeverWidens(f *testing.F) {
	f.Add("tickets:read tickets:write", "resource://tickets", 3, 600, 900, "tickets:read", "", 2, 300, 0, true)
	f.Add("tickets:read", "resource://tickets", 1, 600, 900, "tickets:read", "resource://tickets", 0, 0, 0, true)
	f.Add("a b c", "r1 r2", 5, 0, 60, "c b", "r2", 4, 0, 120, false)
	f.Add("a", "r", 2, 30, 3600, "a", "r", 1, 0, 0, false)
	f.Add("a", "", 10, 0, 0, "a z", "q", 9, 86400, 0, true)
	// Seeds that plan, so that a plain go test runs the invariants too.
	f.Add("tickets:read tickets:write", "resource://tickets", 3, 600, 900, "tickets:read", "resource://tickets", 2, 300, 0, true)
	f.Add("a b", "r", 2, 0, 0, "a", "", 1, 0, 0, true)       // default TTL, resource from the client
	f.Add("a", "r", 2, 0, 120, "a", "r", 0, 0, 0, true)      // default TTL fitted inside the parent's life
	f.Add("a", "r", 3, 600, 0, "a", "r", 2, 0, 0, true)      // default TTL capped by the parent's TTL
	f.Add("a", "r", 2, 600, 900, "a", "r", 1, 0, 300, false) // explicit expiry under a parent TTL
	// Seeds wider than the parent in one respect each: refused today, they
	// reach the invariants if a local check goes missing.
	f.Add("a", "r", 2, 0, 0, "a z", "r", 1, 0, 0, true)   // scope
	f.Add("a", "r", 2, 0, 0, "a", "q", 1, 0, 0, true)     // resource
	f.Add("a", "r", 2, 0, 0, "a", "r", 2, 0, 0, true)     // hops
	f.Add("a", "r", 2, 600, 0, "a", "r", 1, 900, 0, true) // TTL
	f.Add("a", "r", 2, 0, 600, "a", "r", 1, 0, 900, true) // expiry
	// An expiry under a second away under a parent TTL: the child's TTL,
	// derived from it, must not round down to none.
	f.Add("a", " ", 3, 600, 0, "a", "0", 2, 0, 1, true)
	f.Fuzz(func(t *testing.T, parentScopes, parentRes string, parentHops, parentTTL, parentLife int,
		scopes, res string, hops, ttl, expiresIn int, childDefaultTTL bool) {
		c := planClient("r")
		now := time.Now()
		e := &edgeGrant{
			scopes:    wire.NormalizeScopes(strings.Fields(parentScopes)),
			resources: strings.Fields(parentRes),
			maxHops:   parentHops,
			ttl:       time.Duration(parentTTL) * time.Second,
		}
		if parentLife > 0 {
			e.expiresAt = now.Add(time.Duration(parentLife) * time.Second)
		}
		parent := &Agent{zoneID: "z", applicationID: "app", sessionID: "P", delegationID: "E", edge: e}
		k := Constraints{MaxHops: hops}
		if expiresIn > 0 {
			k.ExpiresAt = now.Add(time.Duration(expiresIn) * time.Second)
		}
		defTTL := time.Duration(0)
		if childDefaultTTL {
			defTTL = time.Hour
		}
		p, err := c.planNarrow(Grant.Narrow(strings.Fields(scopes), res, k, time.Duration(ttl)*time.Second), parent, defTTL)
		if err != nil {
			return
		}
		for _, s := range p.scopes {
			if !contains(e.scopes, s) {
				t.Fatalf("scope %q outside parent %v", s, e.scopes)
			}
		}
		if len(e.resources) > 0 {
			for _, r := range p.resources {
				if !contains(e.resources, r) {
					t.Fatalf("resource %q outside parent %v", r, e.resources)
				}
			}
		}
		if max(p.constraints.MaxHops, 1) > max(e.maxHops, 1)-1 {
			t.Fatalf("hops %d not below parent %d", p.constraints.MaxHops, e.maxHops)
		}
		life := time.Duration(p.ttlSeconds) * time.Second
		if e.ttl > 0 && (p.ttlSeconds == 0 || life > e.ttl) {
			t.Fatalf("ttl %v exceeds parent ttl %v", life, e.ttl)
		}
		if !e.expiresAt.IsZero() {
			end := now.Add(life)
			if !p.constraints.ExpiresAt.IsZero() {
				end = p.constraints.ExpiresAt
			}
			if p.ttlSeconds == 0 && p.constraints.ExpiresAt.IsZero() {
				t.Fatal("no expiry under an expiring parent")
			}
			if end.After(e.expiresAt.Add(time.Second)) {
				t.Fatalf("expiry %v after parent's %v", end, e.expiresAt)
			}
		}
	})
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
