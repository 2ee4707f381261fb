package caracal_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

func newStack(t *testing.T, opts ...caracaltest.Option) (*caracaltest.Stack, *caracal.Client) {
	t.Helper()
	st := caracaltest.Start(t, opts...)
	c, _ := newClient(t, st)
	return st, c
}

// newClient returns a client of st over its own HTTP transport, closed (with
// its idle connections, so that the stack's shutdown need not wait for
// them) when the test ends.
func newClient(tb testing.TB, st *caracaltest.Stack, opts ...caracal.Option) (*caracal.Client, *http.Client) {
	tb.Helper()
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	if len(st.ClientOptions()) > 0 { // in memory: keep the stack's transport
		hc = st.HTTPClient()
	}
	c, err := st.NewClient(append([]caracal.Option{caracal.WithHTTPClient(hc)}, opts...)...)
	require.NoError(tb, err)
	tb.Cleanup(func() {
		_ = c.Close(context.Background())
		hc.CloseIdleConnections()
	})
	return c, hc
}

// retiredID returns the session id of the last retire st recorded; the
// test fails if there was none.
func retiredID(t *testing.T, st *caracaltest.Stack) string {
	t.Helper()
	var id string
	for _, r := range st.Requests() {
		if r.Pattern == caracaltest.RouteRetire {
			id = r.Path[strings.LastIndex(r.Path, "/")+1:]
		}
	}
	require.NotEmpty(t, id, "the retire was sent")
	return id
}

// requireReportedRunning checks that session id, whose retire failed, is
// still active on st and that c's Close reports it.
func requireReportedRunning(t *testing.T, st *caracaltest.Stack, c *caracal.Client, id string) {
	t.Helper()
	info, _ := st.SessionInfo(id)
	require.Equal(t, "active", info.Status)
	err := c.Close(t.Context())
	assert.ErrorIs(t, err, caracal.ErrUnavailable)
	assert.ErrorContains(t, err, id)
}

// startsOf returns the recorded session-start requests.
func startsOf(st *caracaltest.Stack) []caracaltest.Request {
	var out []caracaltest.Request
	for _, r := range st.Requests() {
		if r.Pattern == caracaltest.RouteStart {
			out = append(out, r)
		}
	}
	return out
}

func TestSpawnRootAndClose(t *testing.T) {
	st, c := newStack(t)
	before := time.Now().Truncate(time.Millisecond) // the server's times have millisecond precision
	s, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"), caracal.WithMetadata(map[string]any{"task": "triage"}))
	require.NoError(t, err)

	info, ok := st.SessionInfo(s.ID())
	require.True(t, ok)
	assert.Equal(t, "active", info.Status)
	assert.Equal(t, "task", info.Lifecycle)
	assert.Equal(t, []string{"dispatcher"}, info.Labels)
	assert.Empty(t, info.ParentID)
	assert.Equal(t, []string{"dispatcher"}, s.Labels())
	assert.WithinRange(t, s.ExpiresAt(), before.Add(time.Hour), time.Now().Add(time.Hour))

	a, ok := caracal.FromContext(s.Context())
	require.True(t, ok)
	assert.Same(t, s.Agent(), a)
	assert.Equal(t, s.ID(), a.SessionID())
	assert.Equal(t, st.Zone(), a.ZoneID())
	assert.Equal(t, st.Application().ID, a.ApplicationID())
	assert.Empty(t, a.DelegationID())
	assert.Zero(t, a.Hop())
	assert.Regexp(t, `^[0-9a-f]{32}$`, a.TraceID())
	assert.Equal(t, info.SubjectRecordID, a.SubjectRecordID())

	starts := startsOf(st)
	require.Len(t, starts, 1)
	assert.Regexp(t, `^[0-9a-f]{32}$`, starts[0].Header.Get("Idempotency-Key"))
	assert.Equal(t, "generated", starts[0].Header.Get("Idempotency-Key-Kind"))
	assert.Contains(t, starts[0].Header.Get("Traceparent"), a.TraceID())
	assert.Contains(t, string(starts[0].Body), `"parent_authority":"inherit"`)
	assert.NotContains(t, string(starts[0].Body), `"ttl_seconds"`, "no TTL: the server default applies")

	require.NoError(t, s.Close(t.Context()))
	info, _ = st.SessionInfo(s.ID())
	assert.Equal(t, "terminated", info.Status)
	assert.ErrorIs(t, context.Cause(s.Context()), caracal.ErrSessionClosed)
	require.NoError(t, s.Close(t.Context()), "Close is idempotent")
	assert.Equal(t, 1, st.Count(caracaltest.RouteRetire))
	for _, r := range st.Requests() {
		if r.Pattern == caracaltest.RouteRetire {
			assert.Empty(t, r.Body, "a task retire has no body")
			assert.Empty(t, r.Header.Values("Content-Type"))
		}
	}
}

func TestSpawnChildInheritsFromBoundParent(t *testing.T) {
	st, c := newStack(t)
	root, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"), caracal.WithTTL(10*time.Minute))
	require.NoError(t, err)
	child, err := c.Spawn(root.Context(), caracal.WithLabels("reader"))
	require.NoError(t, err)

	info, _ := st.SessionInfo(child.ID())
	assert.Equal(t, root.ID(), info.ParentID)
	assert.Equal(t, 1, info.Depth)
	assert.Equal(t, root.Agent().TraceID(), child.Agent().TraceID(), "the trace continues")
	assert.Empty(t, child.Agent().DelegationID(), "a root has no edge to mirror")
	assert.Zero(t, child.Agent().Hop())
	assert.Contains(t, string(startsOf(st)[0].Body), `"ttl_seconds":600`)

	// Closing the parent ends the child; the child's own Close then finds
	// it gone, which counts as retired.
	require.NoError(t, root.Close(t.Context()))
	info, _ = st.SessionInfo(child.ID())
	assert.Equal(t, "terminated", info.Status)
	require.NoError(t, child.Close(t.Context()))
}

func TestSpawnParentSelection(t *testing.T) {
	st, c := newStack(t)
	a, err := c.Spawn(t.Context())
	require.NoError(t, err)
	b, err := c.Spawn(t.Context())
	require.NoError(t, err)

	child, err := c.Spawn(t.Context(), caracal.WithParent(b.Agent()))
	require.NoError(t, err)
	info, _ := st.SessionInfo(child.ID())
	assert.Equal(t, b.ID(), info.ParentID)

	_, err = c.Spawn(a.Context(), caracal.WithParent(b.Agent()))
	assert.ErrorIs(t, err, caracal.ErrInvalidRequest)

	rootAgain, err := c.Spawn(a.Context(), caracal.WithoutParent())
	require.NoError(t, err)
	info, _ = st.SessionInfo(rootAgain.ID())
	assert.Empty(t, info.ParentID)
}

// A session spawned without a TTL asks for the configured default and
// expires that long after it started (on the bubble's clock, which stands
// still while the spawn runs).
func TestSpawnDefaultTTLFromConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, _ := newClient(t, st, caracal.WithDefaultTTL(90*time.Second))
		start := time.Now()
		s, err := c.Spawn(t.Context())
		require.NoError(t, err)
		assert.Contains(t, string(startsOf(st)[0].Body), `"ttl_seconds":90`)
		assert.True(t, start.Add(90*time.Second).Equal(s.ExpiresAt()), "expires at %v, want %v", s.ExpiresAt(), start.Add(90*time.Second))
	})
}

// narrowReader spawns root → child narrowed to tickets:read on the default
// resource, with the given child labels.
func narrowReader(t *testing.T, c *caracal.Client, k caracal.Constraints, labels ...string) (root, child *caracal.Session) {
	t.Helper()
	root, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	child, err = c.Spawn(root.Context(), caracal.WithLabels(labels...), caracal.WithTTL(10*time.Minute),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", k, 5*time.Minute)))
	require.NoError(t, err)
	return root, child
}

func TestNarrowedChildWithMatchingLabel(t *testing.T) {
	st, c := newStack(t)
	before := time.Now().Truncate(time.Millisecond) // the server's times have millisecond precision
	root, child := narrowReader(t, c, caracal.Constraints{}, "reader")
	after := time.Now()

	a := child.Agent()
	require.NotEmpty(t, a.DelegationID())
	assert.Equal(t, 1, a.Hop())
	assert.Empty(t, a.ParentDelegationID())
	edge, ok := st.EdgeInfo(a.DelegationID())
	require.True(t, ok)
	assert.Equal(t, root.ID(), edge.Source)
	assert.Equal(t, child.ID(), edge.Target)
	assert.Equal(t, "resource://tickets", edge.Resource)
	assert.Equal(t, []string{"tickets:read"}, edge.Scopes)
	assert.Equal(t, "active", edge.Status)
	assert.WithinRange(t, edge.ExpiresAt, before.Add(5*time.Minute), after.Add(5*time.Minute), "the narrowed TTL")

	starts := startsOf(st)
	require.Len(t, starts, 2)
	assert.Contains(t, string(starts[1].Body), `"parent_authority":"none"`, "no mirrored edge alongside the narrowed one")

	use, err := caracal.MintUse(child.Context(), c, "resource://tickets", "tickets:read")
	require.NoError(t, err)
	assert.Equal(t, "gateway", use)

	// The narrowing holds: a wider scope is refused at the STS.
	_, err = caracal.MintUse(child.Context(), c, "resource://tickets", "tickets:write")
	assert.ErrorIs(t, err, caracal.ErrAccessDenied)
	assert.ErrorContains(t, err, "requested scopes exceed delegation scopes", "refused for the edge, not for the role")

	// Retiring the child revokes its edge.
	require.NoError(t, child.Close(t.Context()))
	edge, _ = st.EdgeInfo(a.DelegationID())
	assert.Equal(t, "revoked", edge.Status)
}

func TestNarrowedChildWithoutMatchingLabel(t *testing.T) {
	_, c := newStack(t)
	_, child := narrowReader(t, c, caracal.Constraints{}, "auditor")
	require.NotEmpty(t, child.Agent().DelegationID(), "the delegation itself is created")
	_, err := caracal.MintUse(child.Context(), c, "resource://tickets", "tickets:read")
	var e *caracal.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 403, e.StatusCode)
	assert.Equal(t, "access_denied", e.Code)
	assert.Contains(t, e.Description, "policy denied")

	// No labels at all: same refusal.
	_, bare := narrowReader(t, c, caracal.Constraints{})
	_, err = caracal.MintUse(bare.Context(), c, "resource://tickets", "tickets:read")
	assert.ErrorIs(t, err, caracal.ErrAccessDenied)
}

func TestNarrowingWiderThanParentIsRefusedLocally(t *testing.T) {
	st, c := newStack(t)
	_, child := narrowReader(t, c, caracal.Constraints{MaxHops: 3}, "reader")
	st.ResetRecord()

	// Each grant is the working one below (MaxHops 2, a minute, tickets:read
	// on resource://tickets) widened in one dimension only, and the refusal
	// names that dimension.
	hops2 := caracal.Constraints{MaxHops: 2}
	for name, tc := range map[string]struct {
		g    caracal.Authority
		want string
	}{
		"scope":    {caracal.Grant.Narrow([]string{"tickets:write"}, "resource://tickets", hops2, time.Minute), "tickets:write"},
		"resource": {caracal.Grant.Narrow([]string{"tickets:read"}, "resource://other", hops2, time.Minute), "resource://other"},
		"ttl":      {caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", hops2, time.Hour), time.Hour.String()},
		"hops":     {caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{MaxHops: 3}, time.Minute), "MaxHops 3"},
	} {
		_, err := c.Spawn(child.Context(), caracal.WithGrant(tc.g))
		assert.ErrorIs(t, err, caracal.ErrInvalidGrant, name)
		assert.ErrorContains(t, err, tc.want, name)
	}
	assert.Empty(t, st.Requests(), "refused before any call")

	// Within the parent's slice it works, and the edge chains to the parent's.
	gc, err := c.Spawn(child.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{MaxHops: 2}, time.Minute)))
	require.NoError(t, err)
	assert.Equal(t, 2, gc.Agent().Hop())
	assert.Equal(t, child.Agent().DelegationID(), gc.Agent().ParentDelegationID())
	edge, ok := st.EdgeInfo(gc.Agent().DelegationID())
	require.True(t, ok)
	assert.Equal(t, child.Agent().DelegationID(), edge.ParentEdge)
	use, err := caracal.MintUse(gc.Context(), c, "resource://tickets", "tickets:read")
	require.NoError(t, err)
	assert.Equal(t, "gateway", use)
}

func TestNarrowingRefusedByServerRetiresChild(t *testing.T) {
	st, c := newStack(t)
	root, err := c.Spawn(t.Context())
	require.NoError(t, err)
	// tickets:admin is not a declared scope of the resource: only the
	// Coordinator knows that.
	_, err = c.Spawn(root.Context(), caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:admin"}, "resource://tickets", caracal.Constraints{}, time.Minute)))
	var e *caracal.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "coordinator", e.Service)
	assert.Equal(t, "delegation_scopes_exceed_resource", e.Code)
	assert.ErrorIs(t, err, caracal.ErrAccessDenied)
	assert.ErrorContains(t, err, `to "tickets:admin" on resource://tickets (retired again)`)

	starts := startsOf(st)
	require.Len(t, starts, 2)
	childID := retiredID(t, st)
	info, ok := st.SessionInfo(childID)
	require.True(t, ok)
	assert.Equal(t, "terminated", info.Status, "never an orphan")
	assert.Equal(t, root.ID(), info.ParentID)
}

func TestNarrowingWiderThanUnknownParentRefusedByServer(t *testing.T) {
	st, c := newStack(t)
	root, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	giver, err := c.Spawn(root.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{MaxHops: 3}, 5*time.Minute)))
	require.NoError(t, err)
	peer, err := c.Spawn(root.Context(), caracal.WithLabels("reader"), caracal.WithGrant(caracal.Grant.None()))
	require.NoError(t, err)

	d, err := c.Delegate(giver.Context(), peer.ID(),
		caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{MaxHops: 2}, 2*time.Minute))
	require.NoError(t, err)
	assert.Same(t, giver.Agent(), mustAgent(t, giver.Context()), "Delegate does not rebind the caller")
	ctx, err := c.AcceptDelegation(peer.Context(), d.ID)
	require.NoError(t, err)

	// The peer's process does not know the accepted edge's limits: the
	// Coordinator refuses the wider child, and the child is retired.
	_, err = c.Spawn(ctx, caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:write"}, "resource://tickets", caracal.Constraints{}, time.Minute)))
	var e *caracal.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "delegation_exceeds_parent_authority", e.Code)
	assert.Equal(t, 1, st.Count(caracaltest.RouteRetire))
}

func mustAgent(t *testing.T, ctx context.Context) *caracal.Agent {
	t.Helper()
	a, ok := caracal.FromContext(ctx)
	require.True(t, ok)
	return a
}

func TestGrantRefusalsBeforeAnyCall(t *testing.T) {
	st, c := newStack(t)
	_, err := c.Spawn(t.Context(), caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{}, time.Minute)))
	assert.ErrorIs(t, err, caracal.ErrNarrowNeedsParent)
	assert.Empty(t, st.Requests())

	root, err := c.Spawn(t.Context())
	require.NoError(t, err)
	st.ResetRecord()
	_, err = c.Spawn(root.Context(), caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "", caracal.Constraints{Budget: 5}, time.Minute)))
	assert.ErrorIs(t, err, caracal.ErrBudgetUnsupported)
	_, err = c.Spawn(root.Context(), caracal.WithGrant(caracal.Grant.Narrow(nil, "", caracal.Constraints{}, time.Minute)))
	assert.ErrorIs(t, err, caracal.ErrInvalidGrant)
	assert.Empty(t, st.Requests())
}

func TestIdempotentSpawnReplays(t *testing.T) {
	st, c := newStack(t)
	a, err := c.Spawn(t.Context(), caracal.WithIdempotencyKey("job-7"), caracal.WithLabels("reader"))
	require.NoError(t, err)
	b, err := c.Spawn(t.Context(), caracal.WithIdempotencyKey("job-7"), caracal.WithLabels("reader"))
	require.NoError(t, err)
	assert.Equal(t, a.ID(), b.ID())
	assert.Equal(t, "job-7", startsOf(st)[1].Header.Get("Idempotency-Key"))
	assert.Empty(t, startsOf(st)[1].Header.Values("Idempotency-Key-Kind"))

	// Another client holds another lifecycle token: the key conflicts.
	other, err := st.NewClient()
	require.NoError(t, err)
	defer other.Close(context.Background())
	_, err = other.Spawn(t.Context(), caracal.WithIdempotencyKey("job-7"), caracal.WithLabels("reader"))
	var apiErr *caracal.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "idempotency_key_conflict", apiErr.Code)
	assert.ErrorIs(t, err, caracal.ErrConflict)
}

func TestHeaders(t *testing.T) {
	st, c := newStack(t)
	_, err := c.Headers(t.Context())
	assert.ErrorIs(t, err, caracal.ErrNoSession)

	h, err := c.Headers(t.Context(), caracal.AsApplication())
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(h.Get("Authorization"), "Bearer ey"))
	assert.Regexp(t, `^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`, h.Get("Traceparent"))
	assert.Empty(t, h.Values("Baggage"))

	_, child := narrowReader(t, c, caracal.Constraints{}, "reader")
	h, err = c.Headers(child.Context())
	require.NoError(t, err)
	a := child.Agent()
	assert.Contains(t, h.Get("Traceparent"), a.TraceID())
	bag := h.Get("Baggage")
	assert.Contains(t, bag, "caracal.agent_session="+a.SessionID())
	assert.Contains(t, bag, "caracal.delegation_edge="+a.DelegationID())
	assert.Contains(t, bag, "caracal.hop=1")
	assert.True(t, strings.HasPrefix(h.Get("Authorization"), "Bearer ey"))
	assert.Equal(t, 1, st.Count(caracaltest.RouteToken), "Headers reuses the cached lifecycle token")

	// The bearer is a lifecycle token the Coordinator accepts.
	req, _ := http.NewRequestWithContext(t.Context(), "DELETE", st.CoordinatorURL()+"/zones/"+st.Zone()+"/agents/"+child.ID(), nil)
	req.Header = h
	resp, err := st.HTTPClient().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 204, resp.StatusCode)

	// A closed session's agent gets no headers.
	require.NoError(t, child.Close(t.Context()))
	_, err = c.Headers(child.Context())
	assert.ErrorIs(t, err, caracal.ErrSessionClosed)
	_, err = c.Headers(context.WithoutCancel(child.Context()))
	assert.ErrorIs(t, err, caracal.ErrSessionClosed, "also when the context outlives the session")
}

func TestIdempotentNarrowedSpawnReusesEdge(t *testing.T) {
	st, c := newStack(t)
	root, err := c.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	opts := []caracal.SpawnOption{caracal.WithIdempotencyKey("job-9"), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, 5*time.Minute))}
	a, err := c.Spawn(root.Context(), opts...)
	require.NoError(t, err)
	b, err := c.Spawn(root.Context(), opts...)
	require.NoError(t, err)
	assert.Equal(t, a.ID(), b.ID(), "the start was replayed")
	assert.Equal(t, a.Agent().DelegationID(), b.Agent().DelegationID(), "and its narrowing reused")
	assert.Equal(t, 1, st.Count(caracaltest.RouteDelegate))
	_, err = caracal.MintUse(b.Context(), c, "resource://tickets", "tickets:read")
	require.NoError(t, err)
}

// Two handles on one session (a start replayed under the caller's key) end
// together: once one retires the session, the other's Context ends and its
// Close has nothing left to do.
func TestReplayedSpawnHandlesEndTogether(t *testing.T) {
	st, c := newStack(t)
	a, err := c.Spawn(t.Context(), caracal.WithIdempotencyKey("job-1"))
	require.NoError(t, err)
	b, err := c.Spawn(t.Context(), caracal.WithIdempotencyKey("job-1"))
	require.NoError(t, err)
	require.Equal(t, a.ID(), b.ID())

	require.NoError(t, a.Close(t.Context()))
	select {
	case <-b.Context().Done():
		assert.ErrorIs(t, context.Cause(b.Context()), caracal.ErrSessionClosed)
	default:
		t.Fatal("the other handle's Context is still live after its session was retired")
	}
	require.NoError(t, b.Close(t.Context()))
	assert.Equal(t, 1, st.Count(caracaltest.RouteRetire))
	info, _ := st.SessionInfo(a.ID())
	assert.Equal(t, "terminated", info.Status)
}
