package caracaltest

import (
	"crypto/ecdsa"
	"net/http"
	"sync"
	"time"
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

// world is the shared state behind the three services of one Stack: the
// equivalent of the Postgres and Redis state the real servers share. Every
// field is guarded by mu; handlers take it for the whole of a request's
// decision so that each request is atomic, as the real servers' zone locks
// make them.
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

	records    map[string]*authorityRecord // by id (JWT sid)
	sessions   map[string]*session         // by agent_session_id
	edges      map[string]*edge            // by delegation_edge_id
	approvals  map[string]*approval        // by approval id
	receipts   map[receiptKey]*receipt     // idempotency receipts
	seenJTI    map[string]time.Time        // Gateway replay cache: jti -> exp
	authFails  map[string]*failWindow      // STS failed-auth counter per application
	mintCounts map[mintKey]*mintWindow     // STS mint rate limit
	epoch      int64                       // delegation graph epoch

	upstreams map[string]upstream // by resource identifier
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
	id          string
	sessionType string // application | user
	subjectID   string
	parentID    string
	status      string // active | revoked | expired
	expiresAt   time.Time
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
	lastHeartbeatAt time.Time
	deadline        time.Time // services only
	generation      int64
	childCount      int
	metadata        []byte
	reason          string
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
	constraints map[string]any // normalized constraints_json as stored
	status      string         // active | revoked | expired
	expiresAt   time.Time
	version     int64
	revokedAt   time.Time
	createdAt   time.Time
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
}

// receiptKey scopes an idempotency receipt (PROTOCOL §4.2).
type receiptKey struct {
	operation string
	scopeID   string
	key       string
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
