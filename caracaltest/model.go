package caracaltest

import (
	"crypto/ecdsa"
	"net/http"
	"time"

	"github.com/caracal-go/caracal/internal/wire"
)

// signingKey is one zone ES256 key.
type signingKey struct {
	kid     string
	private *ecdsa.PrivateKey
	// retires is when a rotated-out key leaves the key set; zero for the
	// current key.
	retires time.Time
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

// live is the liveness of a delegation endpoint at the Coordinator (§5.1
// row 3) and, with a user anchor's check added by w.sessionMintable, of a
// session at the STS and Gateway (row 4): the two rules agree for every
// session the Coordinator can hold. Status active, and the service lease or
// the task TTL unexpired.
func (s *session) live(now time.Time) bool {
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
	// changed is closed, and replaced, whenever the hold's state may have
	// changed, waking its long polls; see wake.
	changed chan struct{}
	// expiryWoken records that the hold's expiry has woken its polls.
	expiryWoken bool

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
