package caracaltest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/caracal-go/caracal/internal/wire"
)

// worldConfig is what the harness hands newWorld.
type worldConfig struct {
	Clock     Clock
	Issuer    string // ISSUER_URL
	Zone      string
	Apps      []App
	Resources []Resource // Upstream or UpstreamURL set by the harness
	Policy    Policy
	Lease     time.Duration // default 120 s
	Limits    Limits        // zero fields defaulted by newWorld
	// UpstreamClient reaches resources that have an UpstreamURL.
	UpstreamClient *http.Client
}

// route is one endpoint of one service. The harness mounts routes on the
// service's http.ServeMux with fault injection and recording around them.
type route struct {
	service string // "sts", "coordinator", "gateway"
	pattern string // ServeMux pattern, e.g. "POST /zones/{zone}/agents"
	handler http.HandlerFunc
}

// Defaults of the Caracal 1.0 servers (PROTOCOL Appendix A).
const (
	defaultIssuer        = "http://sts.caracal.internal"
	defaultLease         = 120 * time.Second
	defaultTaskTTL       = 3600 * time.Second
	defaultMaxHops       = 1
	maxLineageWalk       = 10 // cycle detection and revoke cascades stop here
	idemRetention        = 604800 * time.Second
	idemRetentionGen     = 86400 * time.Second
	coordinatorBodyLimit = 256 << 10
	bearerMaxLen         = 4096
)

// idPattern is what every id in a Coordinator URL path must match.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9_.\-:]{1,128}$`)

// world is the shared state behind the three services of one Stack: the
// equivalent of the Postgres and Redis state the real servers share. Every
// field is guarded by mu; handlers take it for the whole of a request's
// decision so that each request is atomic, as the real servers' zone locks
// make them.
//
// Unless its doc comment says otherwise, a world method expects the caller
// to hold mu.
type world struct {
	mu sync.Mutex

	clock     Clock
	issuer    string // ISSUER_URL: iss and the aud of session/gateway tokens
	zone      string
	lease     time.Duration // SERVICE_AGENT_LEASE_SECONDS
	limits    Limits
	keys      []*signingKey // current key first
	apps      map[string]*application
	resources map[string]*resource // by identifier
	resByID   map[string]*resource // by DB id
	policy    Policy

	records   map[string]*authorityRecord // by id (JWT sid)
	sessions  map[string]*session         // by agent_session_id
	open      map[string]*session         // sessions still active or suspended (see addSession)
	children  map[string][]string         // parent session id -> child ids, in start order
	edges     map[string]*edge            // by delegation_edge_id
	inbound   map[string][]string         // target session id -> edge ids, in creation order
	outbound  map[string][]string         // source session id -> edge ids, in creation order
	receipts  map[receiptKey]*receipt     // idempotency receipts
	scopeLive map[receiptScope]int        // receipts stored per scope, pruned lazily
	epoch     int64                       // delegation graph epoch

	// STS/Gateway state (ct-sts).
	approvals  map[string]*approval   // by approval id
	seenJTI    map[string]time.Time   // Gateway replay cache: jti -> exp
	authFails  map[string]*failWindow // STS failed-auth counter per application
	mintCounts map[mintKey]*mintWindow
	upstreams  map[string]upstream // by resource identifier
	upstreamHC *http.Client
	sts        stsState
}

// signingKey is one zone ES256 key.
type signingKey struct {
	kid     string
	private *ecdsa.PrivateKey
}

// application is an application registered in the zone.
type application struct {
	id      string
	secret  string
	dcr     bool
	expired bool
}

// resource is a registered resource.
type resource struct {
	id          string // DB id
	identifier  string // resource://…
	scopes      []string
	upstreamURL string // empty when the resource has no upstream
	// operations, when non-nil, puts the resource in "enforced" mode:
	// "METHOD /path" -> scope.
	operations map[string]string
}

// authorityRecord is an STS authority record (PROTOCOL §3.4).
type authorityRecord struct {
	id            string
	sessionType   string // application | user
	subjectID     string
	parentID      string
	status        string // active | revoked | expired
	expiresAt     time.Time
	revokedAt     time.Time
	revokedReason string
}

// active reports whether the record is active and unexpired at now.
func (r *authorityRecord) active(now time.Time) bool {
	return r != nil && r.status == wire.StatusActive && r.expiresAt.After(now)
}

// session is a Coordinator session row.
type session struct {
	id              string
	app             string
	parentID        string
	subjectRecordID string
	lifecycle       string // task | service
	labels          []string
	status          string // active | suspended | terminated | expired
	depth           int
	ttl             time.Duration // tasks only
	startedAt       time.Time
	lastHeartbeatAt time.Time // zero until the first renewal (tasks: always)
	lastActiveAt    time.Time
	deadline        time.Time // services only
	generation      int64
	childCount      int
	metadata        []byte // canonical JSON object
	reason          string // termination_reason
	terminatedAt    time.Time
}

// isService reports whether the session is lease-renewed.
func (s *session) isService() bool { return s.lifecycle == wire.LifecycleService }

// nonTerminal reports status active or suspended.
func (s *session) nonTerminal() bool {
	return s.status == wire.StatusActive || s.status == wire.StatusSuspended
}

// taskExpiry is started_at + COALESCE(ttl_seconds, 3600).
func (s *session) taskExpiry() time.Time {
	ttl := s.ttl
	if ttl <= 0 {
		ttl = defaultTaskTTL
	}
	return s.startedAt.Add(ttl)
}

// liveForCapacity is the Coordinator's capacity and idempotency-replay
// liveness (PROTOCOL §5.1 row 1).
func (s *session) liveForCapacity(now time.Time) bool {
	if !s.nonTerminal() {
		return false
	}
	if s.isService() {
		return s.status == wire.StatusSuspended || s.deadline.After(now)
	}
	return s.taskExpiry().After(now)
}

// liveEndpoint is the liveness a delegation endpoint needs (§5.1 row 3).
func (s *session) liveEndpoint(now time.Time) bool {
	if s.status != wire.StatusActive {
		return false
	}
	if s.isService() {
		return s.deadline.After(now)
	}
	return s.ttl > 0 && s.startedAt.Add(s.ttl).After(now)
}

// liveForMint is the STS/Gateway activeSession check (§5.1 row 4). Use
// w.sessionMintable, which also checks a user anchor.
func (s *session) liveForMint(now time.Time) bool {
	if s.status != wire.StatusActive {
		return false
	}
	if s.isService() {
		return s.deadline.After(now)
	}
	return s.ttl > 0 && s.startedAt.Add(s.ttl).After(now)
}

// edge is a delegation edge row.
type edge struct {
	id          string
	source      string
	target      string
	issuer      string
	receiver    string
	parentEdge  string
	resourceID  string // DB id, may be empty
	scopes      []string
	constraints wire.Constraints // normalized constraints_json as stored
	status      string           // active | revoked | expired
	expiresAt   time.Time
	version     int64
	revokedAt   time.Time
	createdAt   time.Time
}

// live reports status active and expires_at > now: the only edge validity
// test the servers use.
func (e *edge) live(now time.Time) bool {
	return e != nil && e.status == wire.StatusActive && e.expiresAt.After(now)
}

// maxHops is the edge's max_hops constraint, default 1.
func (e *edge) maxHops() int {
	if e.constraints.MaxHops > 0 {
		return e.constraints.MaxHops
	}
	return defaultMaxHops
}

// approval is an STS approval hold (PROTOCOL §3.8).
type approval struct {
	id         string
	binding    string
	tier       string
	approver   string
	state      string
	expiresAt  time.Time
	consumedAt time.Time
	recordID   string // authority record issued on consumption, for re-issue
	changed    chan struct{}

	// STS/Gateway state
	seq       int64    // creation order
	appID     string   // principal of the held mint
	sessionID string   // agent_session_id of the held mint
	resources []string // allowed resources of the held mint
	scopes    []string // scopes of the held mint
	reissue   *holdReissue
}

// receiptKey scopes an idempotency receipt (PROTOCOL §4.2).
type receiptKey struct {
	operation string
	scopeID   string
	key       string
}

// receiptScope is the unit the receipt limit counts in.
type receiptScope struct {
	operation string
	scopeID   string
}

// receipt is a stored idempotent result.
type receipt struct {
	digest    string
	status    int
	body      []byte
	objectID  string // session or edge id, for the liveness check on replay
	expiresAt time.Time
}

type failWindow struct {
	start        time.Time
	count        int
	blockedUntil time.Time
}

type mintKey struct{ resource, app string }

type mintWindow struct {
	start time.Time
	count int
}

// upstream is where the Gateway forwards a resource's requests.
type upstream struct {
	handler http.Handler // in-process upstream, or nil
	url     string       // HTTP upstream when handler is nil
}

// nowFunc adapts a function to Clock.
type nowFunc func() time.Time

// Now returns f().
func (f nowFunc) Now() time.Time { return f() }

// newWorld builds the world of one stack: defaults, the zone signing key,
// the applications, resources and policy of cfg.
func newWorld(cfg worldConfig) (*world, error) {
	if !idPattern.MatchString(cfg.Zone) {
		return nil, fmt.Errorf("caracaltest: zone id %q must match %s", cfg.Zone, idPattern)
	}
	w := &world{
		clock:      cfg.Clock,
		issuer:     cfg.Issuer,
		zone:       cfg.Zone,
		lease:      cfg.Lease,
		limits:     cfg.Limits,
		apps:       map[string]*application{},
		resources:  map[string]*resource{},
		resByID:    map[string]*resource{},
		records:    map[string]*authorityRecord{},
		sessions:   map[string]*session{},
		open:       map[string]*session{},
		children:   map[string][]string{},
		edges:      map[string]*edge{},
		inbound:    map[string][]string{},
		outbound:   map[string][]string{},
		receipts:   map[receiptKey]*receipt{},
		scopeLive:  map[receiptScope]int{},
		approvals:  map[string]*approval{},
		seenJTI:    map[string]time.Time{},
		authFails:  map[string]*failWindow{},
		mintCounts: map[mintKey]*mintWindow{},
		upstreams:  map[string]upstream{},
		upstreamHC: cfg.UpstreamClient,
	}
	if w.clock == nil {
		w.clock = nowFunc(time.Now)
	}
	if w.issuer == "" {
		w.issuer = defaultIssuer
	}
	if w.lease <= 0 {
		w.lease = defaultLease
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&w.limits.SessionsPerZone, 50)
	def(&w.limits.SessionsPerApp, 200)
	def(&w.limits.ChildrenPerParent, 10)
	def(&w.limits.MaxDepth, 10)
	def(&w.limits.ReceiptsPerScope, 10000)
	def(&w.limits.MintPerMinute, 1000)
	def(&w.limits.AuthFailures, 60)

	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("caracaltest: generate signing key: %w", err)
	}
	w.keys = []*signingKey{{kid: newID(), private: priv}}

	for _, a := range cfg.Apps {
		if !idPattern.MatchString(a.ID) {
			return nil, fmt.Errorf("caracaltest: application id %q must match %s", a.ID, idPattern)
		}
		if _, dup := w.apps[a.ID]; dup {
			return nil, fmt.Errorf("caracaltest: application %q registered twice", a.ID)
		}
		w.apps[a.ID] = &application{id: a.ID, secret: a.Secret, dcr: a.DCR}
	}
	for _, r := range cfg.Resources {
		if r.Identifier == "" {
			return nil, errors.New("caracaltest: a resource needs an Identifier")
		}
		id := r.ID
		if id == "" {
			id = resourceSlug(r.Identifier)
		}
		if _, dup := w.resources[r.Identifier]; dup {
			return nil, fmt.Errorf("caracaltest: resource %q registered twice", r.Identifier)
		}
		if _, dup := w.resByID[id]; dup {
			return nil, fmt.Errorf("caracaltest: resource id %q used twice", id)
		}
		res := &resource{
			id:          id,
			identifier:  r.Identifier,
			scopes:      slices.Clone(r.Scopes),
			upstreamURL: r.UpstreamURL,
		}
		if r.Operations != nil {
			res.operations = make(map[string]string, len(r.Operations))
			for k, v := range r.Operations {
				res.operations[k] = v
			}
		}
		w.resources[r.Identifier] = res
		w.resByID[id] = res
		switch {
		case r.Upstream != nil:
			w.upstreams[r.Identifier] = upstream{handler: r.Upstream}
		case r.UpstreamURL != "":
			w.upstreams[r.Identifier] = upstream{url: r.UpstreamURL}
		}
	}
	w.policy = clonePolicy(cfg.Policy)
	return w, nil
}

// resourceSlug derives the default DB id of a resource identifier:
// "resource://tickets" -> "res-tickets".
func resourceSlug(identifier string) string {
	s := identifier
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	var b strings.Builder
	b.WriteString("res-")
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 4 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

func clonePolicy(p Policy) Policy {
	out := Policy{
		Risk:          slices.Clone(p.Risk),
		ApprovalTiers: slices.Clone(p.ApprovalTiers),
	}
	if p.Grants != nil {
		out.Grants = make(map[string]ResourceGrant, len(p.Grants))
		for id, g := range p.Grants {
			roles := make(map[string][]string, len(g.Roles))
			for r, s := range g.Roles {
				roles[r] = slices.Clone(s)
			}
			out.Grants[id] = ResourceGrant{Application: g.Application, Roles: roles}
		}
	}
	return out
}

// newID returns a fresh UUIDv7 string, as the servers generate ids.
func newID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// now is the world's only time source.
func (w *world) now() time.Time { return w.clock.Now() }

// bumpEpoch records a change of the zone's delegation graph.
func (w *world) bumpEpoch() { w.epoch++ }

// resolveResource finds a resource by identifier or DB id.
func (w *world) resolveResource(idOrIdentifier string) *resource {
	if r := w.resources[idOrIdentifier]; r != nil {
		return r
	}
	return w.resByID[idOrIdentifier]
}

// addRecord inserts an authority record (every successful STS exchange does).
func (w *world) addRecord(sessionType, subjectID, parentID string, expiresAt time.Time) *authorityRecord {
	r := &authorityRecord{
		id:          newID(),
		sessionType: sessionType,
		subjectID:   subjectID,
		parentID:    parentID,
		status:      wire.StatusActive,
		expiresAt:   expiresAt,
	}
	w.records[r.id] = r
	return r
}

// activeRecord returns the record if it is active and unexpired, else nil.
func (w *world) activeRecord(id string) *authorityRecord {
	r := w.records[id]
	if !r.active(w.now()) {
		return nil
	}
	return r
}

// revokeRecord marks the record and every descendant (by parent_id)
// revoked, as the STS does on a caracal.sessions.revoke message.
func (w *world) revokeRecord(id, reason string) {
	now := w.now()
	marked := map[string]bool{}
	queue := []string{id}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if marked[cur] {
			continue
		}
		marked[cur] = true
		if r := w.records[cur]; r != nil && r.status == wire.StatusActive {
			r.status = wire.StatusRevoked
			r.revokedAt = now
			r.revokedReason = reason
		}
		for _, r := range w.records {
			if r.parentID == cur && !marked[r.id] {
				queue = append(queue, r.id)
			}
		}
	}
}

// sessionMintable is the STS/Gateway activeSession check (PROTOCOL §5.1):
// status active, lease or TTL unexpired, and a user anchor still active.
func (w *world) sessionMintable(s *session) bool {
	now := w.now()
	if s == nil || !s.liveForMint(now) {
		return false
	}
	if rec := w.records[s.subjectRecordID]; rec != nil && rec.sessionType == "user" && !rec.active(now) {
		return false
	}
	return true
}

// addSession stores a new session; always add sessions through it so the
// capacity checks, which only look at open sessions, see it.
func (w *world) addSession(s *session) {
	w.sessions[s.id] = s
	if s.nonTerminal() {
		w.open[s.id] = s
	}
	if s.parentID != "" {
		w.children[s.parentID] = append(w.children[s.parentID], s.id)
	}
}

// subtree returns id and all its descendants (by parent_id), root first.
func (w *world) subtree(id string) []*session {
	var out []*session
	queue := []string{id}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if s := w.sessions[cur]; s != nil {
			out = append(out, s)
		}
		queue = append(queue, w.children[cur]...)
	}
	return out
}

// suspendSubtree suspends every active session of the subtree rooted at id.
// Edges stay active (PROTOCOL §5.5). It returns how many changed.
func (w *world) suspendSubtree(id string) int {
	n := 0
	for _, s := range w.subtree(id) {
		if s.status == wire.StatusActive {
			s.status = wire.StatusSuspended
			n++
		}
	}
	return n
}

// resumeSubtree resumes every suspended session of the subtree; services
// get a fresh deadline, generations are unchanged. It returns how many
// changed.
func (w *world) resumeSubtree(id string) int {
	now := w.now()
	n := 0
	for _, s := range w.subtree(id) {
		if s.status == wire.StatusSuspended {
			s.status = wire.StatusActive
			if s.isService() {
				s.deadline = now.Add(w.lease)
			}
			n++
		}
	}
	return n
}

// endSubtree ends the non-terminal sessions of the subtree rooted at id: the
// root gets rootStatus (terminated or expired) and reason, descendants
// terminated/parent_terminated; the parent's child count drops; every active
// edge touching an ended session is revoked, and so is a user authority
// record an ended session is anchored to. It returns the ended sessions.
func (w *world) endSubtree(id, rootStatus, reason string) []*session {
	now := w.now()
	var ended []*session
	for i, s := range w.subtree(id) {
		if !s.nonTerminal() {
			continue
		}
		if i == 0 {
			s.status, s.reason = rootStatus, reason
			if p := w.sessions[s.parentID]; p != nil && p.childCount > 0 {
				p.childCount--
			}
		} else {
			s.status, s.reason = wire.StatusTerminated, "parent_terminated"
		}
		s.terminatedAt = now
		delete(w.open, s.id)
		ended = append(ended, s)
	}
	for _, s := range ended {
		w.revokeSessionEdges(s.id)
		// The revocation events skip application-type records, so only a
		// user anchor is revoked here.
		if rec := w.records[s.subjectRecordID]; rec != nil && rec.sessionType != "application" {
			w.revokeRecord(rec.id, s.reason)
		}
	}
	return ended
}

// revokeSessionEdges revokes every active edge whose source or target is
// the session. It returns how many it revoked.
func (w *world) revokeSessionEdges(id string) int {
	n := 0
	for _, list := range [][]string{w.outbound[id], w.inbound[id]} {
		for _, eid := range list {
			if w.revokeEdge(w.edges[eid]) {
				n++
			}
		}
	}
	return n
}

// revokeEdge revokes one active edge and bumps the epoch.
func (w *world) revokeEdge(e *edge) bool {
	if e == nil || e.status != wire.StatusActive {
		return false
	}
	e.status = wire.StatusRevoked
	e.revokedAt = w.now()
	e.version++
	w.bumpEpoch()
	return true
}

// addEdge stores a new edge and bumps the epoch.
func (w *world) addEdge(e *edge) {
	w.edges[e.id] = e
	w.inbound[e.target] = append(w.inbound[e.target], e.id)
	w.outbound[e.source] = append(w.outbound[e.source], e.id)
	w.bumpEpoch()
}

// liveInbound returns the session's live inbound edges, oldest first.
func (w *world) liveInbound(sessionID string) []*edge {
	now := w.now()
	var out []*edge
	for _, id := range w.inbound[sessionID] {
		if e := w.edges[id]; e.live(now) {
			out = append(out, e)
		}
	}
	return out
}

// edgePath walks parent_edge_id links from the presented edge the way the
// STS does at mint (PROTOCOL §6.6): at most max_hops(presented) edges, each
// live, and the walk must reach an edge without a parent. It returns the
// path root-most first, or false ("delegation path invalid").
func (w *world) edgePath(edgeID string) ([]*edge, bool) {
	now := w.now()
	first := w.edges[edgeID]
	if !first.live(now) {
		return nil, false
	}
	limit := first.maxHops()
	var path []*edge
	for cur := first; ; {
		if !cur.live(now) || len(path) == limit {
			return nil, false
		}
		path = append(path, cur)
		if cur.parentEdge == "" {
			break
		}
		cur = w.edges[cur.parentEdge]
		if cur == nil {
			return nil, false
		}
	}
	slices.Reverse(path)
	return path, true
}

// suspend suspends the session's subtree, as PATCH …/suspend does. It
// takes w.mu.
func (w *world) suspend(id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.sessions[id]
	if s == nil || s.status != wire.StatusActive {
		return fmt.Errorf("caracaltest: session %q not found or not active", id)
	}
	w.suspendSubtree(id)
	return nil
}

// resume resumes the session's subtree, as PATCH …/resume does. It takes
// w.mu.
func (w *world) resume(id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.sessions[id]
	if s == nil || s.status != wire.StatusSuspended {
		return fmt.Errorf("caracaltest: session %q not found or not suspended", id)
	}
	w.resumeSubtree(id)
	return nil
}

// terminate ends the session and its subtree as an operator would: edges
// touching them are revoked, authority records are left alone. It takes
// w.mu.
func (w *world) terminate(id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.sessions[id]
	if s == nil || !s.nonTerminal() {
		return fmt.Errorf("caracaltest: session %q not found or already ended", id)
	}
	w.endSubtree(id, wire.StatusTerminated, "operator")
	return nil
}

// sessionInfo returns a copy of the session's state. It takes w.mu.
func (w *world) sessionInfo(id string) (SessionInfo, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.sessions[id]
	if s == nil {
		return SessionInfo{}, false
	}
	info := SessionInfo{
		ID:              s.id,
		Application:     s.app,
		ParentID:        s.parentID,
		Lifecycle:       s.lifecycle,
		Status:          s.status,
		Labels:          slices.Clone(s.labels),
		Generation:      s.generation,
		Depth:           s.depth,
		SubjectRecordID: s.subjectRecordID,
	}
	if s.isService() {
		info.Deadline = s.deadline
	} else {
		info.ExpiresAt = s.taskExpiry()
	}
	return info, true
}

// edgeInfo returns a copy of the edge's state. It takes w.mu.
func (w *world) edgeInfo(id string) (EdgeInfo, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.edges[id]
	if e == nil {
		return EdgeInfo{}, false
	}
	info := EdgeInfo{
		ID:         e.id,
		Source:     e.source,
		Target:     e.target,
		ParentEdge: e.parentEdge,
		Scopes:     slices.Clone(e.scopes),
		Status:     e.status,
		ExpiresAt:  e.expiresAt,
		ResourceID: e.resourceID,
		MaxHops:    e.maxHops(),
	}
	if r := w.resByID[e.resourceID]; r != nil {
		info.Resource = r.identifier
	}
	return info, true
}

// sweep runs the Coordinator's service-lease and TTL sweepers once, and the
// retention cleaner's edge expiry (PROTOCOL §5.6). It takes w.mu.
func (w *world) sweep() {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	// Lease sweeper: active services whose deadline passed, oldest first.
	var lapsed []*session
	for _, s := range w.sessions {
		if s.isService() && s.status == wire.StatusActive && s.deadline.Before(now) {
			lapsed = append(lapsed, s)
		}
	}
	slices.SortFunc(lapsed, func(a, b *session) int { return a.deadline.Compare(b.deadline) })
	for _, s := range lapsed {
		if s.status == wire.StatusActive { // an earlier suspension may have covered it
			w.suspendSubtree(s.id)
		}
	}
	// TTL sweeper: tasks past started_at + ttl expire; descendants end.
	var overdue []*session
	for _, s := range w.sessions {
		if !s.isService() && s.nonTerminal() && s.taskExpiry().Before(now) {
			overdue = append(overdue, s)
		}
	}
	slices.SortFunc(overdue, func(a, b *session) int { return a.taskExpiry().Compare(b.taskExpiry()) })
	for _, s := range overdue {
		if s.nonTerminal() {
			w.endSubtree(s.id, wire.StatusExpired, "ttl")
		}
	}
	// Retention cleaner, edge part: active edges past expires_at are marked
	// expired. Every validity check already compares expires_at, so this
	// only changes what listings and EdgeInfo show.
	for _, e := range w.edges {
		if e.status == wire.StatusActive && !e.expiresAt.After(now) {
			e.status = wire.StatusExpired
			w.bumpEpoch()
		}
	}
}
