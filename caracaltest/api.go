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

// Policy is the zone's active policy data (PROTOCOL §6.8).
type Policy struct {
	// Grants maps a resource identifier to its owner and roles.
	Grants map[string]ResourceGrant
	// Risk tags scopes with tiers.
	Risk []Risk
	// ApprovalTiers declares which tiers need a human approval.
	ApprovalTiers []ApprovalTier
}

// ResourceGrant names the application that owns a resource and the roles
// (session labels) that may use which scopes.
type ResourceGrant struct {
	Application string
	Roles       map[string][]string
}

// Risk tags a scope with a tier.
type Risk struct {
	Scope, Tier string
}

// ApprovalTier gates a tier behind an approval.
type ApprovalTier struct {
	Tier string
	// Approver is "operator", "subject" or "any".
	Approver string
	// TTL of a hold; zero uses the class default (4 h operator, 15 min otherwise).
	TTL time.Duration
}

// Limits are the servers' tunable limits. Zero fields take the Caracal 1.0
// defaults shown.
type Limits struct {
	SessionsPerZone   int // 50
	SessionsPerApp    int // 200
	ChildrenPerParent int // 10
	MaxDepth          int // 10
	ReceiptsPerScope  int // 10000
	MintPerMinute     int // 1000
	AuthFailures      int // 60 per minute before a 60 s block
}
