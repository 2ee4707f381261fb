package caracaltest

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// worldConfig is what the harness hands newWorld.
type worldConfig struct {
	Clock     Clock
	Issuer    string // ISSUER_URL
	Zone      string
	Apps      []App
	Resources []Resource // Upstream or UpstreamURL set by the harness
	Policy    zonePolicy
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
	policy    zonePolicy

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

	// STS/Gateway state.
	approvals  map[string]*approval   // by approval id
	seenJTI    map[string]time.Time   // Gateway replay cache: jti -> exp
	authFails  map[string]*failWindow // STS failed-auth counter per application
	mintCounts map[mintKey]*mintWindow
	upstreams  map[string]upstream // by resource identifier
	upstreamHC *http.Client
	sts        stsState
}

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

	key, err := newSigningKey()
	if err != nil {
		return nil, err
	}
	w.keys = []*signingKey{key}

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
		if err := w.addResource(r); err != nil {
			return nil, err
		}
	}
	w.policy = clonePolicy(cfg.Policy)
	return w, nil
}

// addResource registers the resource r, by its identifier and its id
// (derived from the identifier when r has none).
func (w *world) addResource(r Resource) error {
	if r.Identifier == "" {
		return errors.New("caracaltest: a resource needs an Identifier")
	}
	id := r.ID
	if id == "" {
		id = resourceSlug(r.Identifier)
	}
	if _, dup := w.resources[r.Identifier]; dup {
		return fmt.Errorf("caracaltest: resource %q registered twice", r.Identifier)
	}
	if _, dup := w.resByID[id]; dup {
		return fmt.Errorf("caracaltest: resource id %q used twice", id)
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
	return nil
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

func clonePolicy(p zonePolicy) zonePolicy {
	out := zonePolicy{
		Risk:          slices.Clone(p.Risk),
		ApprovalTiers: slices.Clone(p.ApprovalTiers),
	}
	if p.Grants != nil {
		out.Grants = make(map[string]resourceGrant, len(p.Grants))
		for id, g := range p.Grants {
			roles := make(map[string][]string, len(g.Roles))
			for r, s := range g.Roles {
				roles[r] = slices.Clone(s)
			}
			out.Grants[id] = resourceGrant{Application: g.Application, Roles: roles}
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
