package caracaltest

import (
	"net/http"
	"time"
)

// Clock tells the stack what time it is. The default is the system clock
// (which, inside a testing/synctest bubble, is the bubble's fake clock).
type Clock interface {
	Now() time.Time
}

// App is an application registered in the stack's zone.
type App struct {
	ID     string
	Secret string
	// DCR marks a dynamically registered application (one live task
	// session, no children, no services).
	DCR bool
}

// Resource is a protected resource registered in the zone.
type Resource struct {
	// Identifier is what clients name the resource by ("resource://tickets").
	Identifier string
	// ID is the resource's database id; defaults to "res-" + a slug of the
	// identifier.
	ID string
	// Scopes are the declared scopes.
	Scopes []string
	// Upstream serves the resource in-process. If nil and UpstreamURL is
	// empty, the stack installs an echo upstream (see EchoResponse).
	Upstream http.Handler
	// UpstreamURL sends the Gateway's requests over HTTP instead.
	UpstreamURL string
	// Operations, when non-nil, puts the resource in enforced mode:
	// "METHOD /literal/path" → the scope that operation requires.
	Operations map[string]string
}

// zonePolicy is the zone's active policy data (PROTOCOL §6.8).
type zonePolicy struct {
	// Grants maps a resource identifier to its owner and roles.
	Grants map[string]resourceGrant
	// Risk tags scopes with tiers.
	Risk []riskTag
	// ApprovalTiers declares which tiers need a human approval.
	ApprovalTiers []ApprovalTier
}

// resourceGrant names the application that owns a resource and the roles
// (session labels) that may use which scopes.
type resourceGrant struct {
	Application string
	Roles       map[string][]string
}

// riskTag tags a scope with a tier.
type riskTag struct {
	Scope, Tier string
}

// ApprovalTier gates a tier behind an approval.
type ApprovalTier struct {
	Tier string
	// Approver is "operator", "subject" or "any".
	Approver string
	// TTL of a hold; zero uses the class default (4 h operator, 15 min
	// otherwise). A negative TTL given to WithApprovalTier makes New fail.
	TTL time.Duration
}

// Limits are the servers' tunable limits. Zero fields take the Caracal 1.0
// defaults shown; a negative one makes New fail.
type Limits struct {
	SessionsPerZone   int // 50
	SessionsPerApp    int // 200
	ChildrenPerParent int // 10
	MaxDepth          int // 10
	ReceiptsPerScope  int // 10000
	MintPerMinute     int // 1000
	AuthFailures      int // 60 per minute before a 60 s block
}

// Route patterns, one per endpoint the stack serves. They are the
// http.ServeMux patterns the services are mounted with, and the keys that
// Stack.Inject and Stack.Count take and Request.Pattern reports.
const (
	// RouteToken is the STS token endpoint (lifecycle tokens and mandates).
	RouteToken = "POST /oauth/2/token"
	// RouteApproval is the STS approval long poll.
	RouteApproval = "GET /approvals/{id}"
	// RouteJWKS is the STS key set.
	RouteJWKS = "GET /.well-known/jwks.json"

	// RouteStart starts a session on the Coordinator.
	RouteStart = "POST /zones/{zone}/agents"
	// RouteRetire retires a session.
	RouteRetire = "DELETE /zones/{zone}/agents/{id}"
	// RouteHeartbeat renews a service session's lease.
	RouteHeartbeat = "POST /zones/{zone}/agents/{id}/heartbeat"
	// RouteLease acquires (attaches to) a service session's lease.
	RouteLease = "POST /zones/{zone}/agents/{id}/lease"
	// RouteResume resumes a suspended session and its subtree.
	RouteResume = "PATCH /zones/{zone}/agents/{id}/resume"
	// RouteDelegate creates a delegation edge.
	RouteDelegate = "POST /zones/{zone}/delegations"
	// RouteRevoke revokes a delegation edge.
	RouteRevoke = "PATCH /zones/{zone}/delegations/{id}/revoke"
	// RouteInbound looks up one inbound edge of a session.
	RouteInbound = "GET /zones/{zone}/delegations/inbound/{sid}/{id}"

	// RouteGateway is the Gateway's catch-all: every Gateway request.
	RouteGateway = "/"
)

// SessionInfo is the Coordinator's view of one session, for assertions.
type SessionInfo struct {
	ID          string
	Application string
	// ParentID is the parent session, empty for a root.
	ParentID string
	// Lifecycle is "task" or "service".
	Lifecycle string
	// Status is "active", "suspended", "terminated" or "expired".
	Status string
	Labels []string
	// Generation is a service session's lease generation (0 for tasks).
	Generation int64
	// Deadline is a service session's lease deadline (zero for tasks).
	Deadline time.Time
	// ExpiresAt is a task session's TTL expiry (zero for services).
	ExpiresAt time.Time
	// Depth is the session's depth in its tree (root 0).
	Depth int
	// SubjectRecordID is the authority record the session is anchored to.
	SubjectRecordID string
}

// EdgeInfo is the Coordinator's view of one delegation edge.
type EdgeInfo struct {
	ID string
	// Source and Target are the session ids the edge runs between.
	Source, Target string
	// ParentEdge is the edge this one narrows, empty for a root edge.
	ParentEdge string
	// Resource is the resource identifier the edge is scoped to, if any.
	Resource string
	Scopes   []string
	// Status is "active", "revoked" or "expired".
	Status    string
	ExpiresAt time.Time
	// ResourceID is the resource's database id, if any.
	ResourceID string
	// MaxHops is the edge's max_hops constraint (default 1).
	MaxHops int
}

// ApprovalInfo is one STS approval hold (PROTOCOL §3.8).
type ApprovalInfo struct {
	ID string
	// State is "pending", "approved", "rejected", "expired" or "consumed".
	State string
	// Tier is the gated tier (several joined with ","), Approver its class.
	Tier, Approver string
	// Binding is the hold's binding hash.
	Binding   string
	ExpiresAt time.Time
	// Scopes and Resource are what the held mint asked for; SessionID is
	// the agent session that asked.
	Scopes    []string
	Resource  string
	SessionID string
}
