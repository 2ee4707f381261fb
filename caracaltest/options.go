package caracaltest

import (
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Defaults installed unless WithoutDefaults is given.
const (
	defaultZone        = "zone-test"
	defaultApplication = "app-test"
	defaultResource    = "resource://tickets"
)

// Option configures a Stack.
type Option func(*settings)

// settings collects the options of one stack.
type settings struct {
	zone       string
	apps       []App
	resources  []Resource
	grants     map[string]resourceGrant
	risk       []riskTag
	tiers      []ApprovalTier
	clock      Clock
	lease      time.Duration
	limits     Limits
	inMemory   bool
	noDefaults bool
	// extraRoutes are mounted next to the world's routes (tests of the
	// harness itself use them).
	extraRoutes []route
}

// WithZone sets the zone id (default "zone-test").
func WithZone(id string) Option { return func(s *settings) { s.zone = id } }

// WithApplication registers an application. The first application
// registered (app-test unless WithoutDefaults) is the one Config and
// NewClient use; registering one with the id of an earlier one replaces it.
// An empty Secret gets a random one.
func WithApplication(a App) Option {
	return func(s *settings) { s.apps = append(s.apps, a) }
}

// WithResource registers a resource; one with the identifier of an earlier
// one replaces it. A resource without Upstream and UpstreamURL is served by
// an echo upstream (see EchoResponse). A resource needs a policy grant
// (WithGrant) before any application can use it.
func WithResource(r Resource) Option {
	r.Scopes = slices.Clone(r.Scopes)
	if r.Operations != nil {
		ops := make(map[string]string, len(r.Operations))
		for k, v := range r.Operations {
			ops[k] = v
		}
		r.Operations = ops
	}
	return func(s *settings) { s.resources = append(s.resources, r) }
}

// WithGrant sets the policy grant of a resource: the application that owns
// it and the roles (session labels) that may use which of its scopes. It
// replaces any earlier grant of the resource, the default one included.
// A grant for a resource the stack does not have makes New fail.
func WithGrant(resourceIdentifier, application string, roles map[string][]string) Option {
	g := resourceGrant{Application: application, Roles: make(map[string][]string, len(roles))}
	for role, scopes := range roles {
		g.Roles[role] = slices.Clone(scopes)
	}
	return func(s *settings) {
		if s.grants == nil {
			s.grants = map[string]resourceGrant{}
		}
		s.grants[resourceIdentifier] = g
	}
}

// WithRisk tags a scope with a risk tier; a later tag of the same scope
// replaces an earlier one.
func WithRisk(scope, tier string) Option {
	return func(s *settings) { s.risk = append(s.risk, riskTag{Scope: scope, Tier: tier}) }
}

// WithApprovalTier gates a tier behind a human approval; a later gate of the
// same tier replaces an earlier one.
func WithApprovalTier(t ApprovalTier) Option {
	return func(s *settings) { s.tiers = append(s.tiers, t) }
}

// WithClock makes the stack read time from c. With a *FakeClock the
// sweepers run when the clock moves; with any other Clock they run once a
// second of real time (and on Sweep).
func WithClock(c Clock) Option { return func(s *settings) { s.clock = c } }

// WithLease sets the service-session lease (SERVICE_AGENT_LEASE_SECONDS,
// default 120 s). Zero keeps the default; a negative d makes New fail.
func WithLease(d time.Duration) Option { return func(s *settings) { s.lease = d } }

// WithLimits sets the servers' tunable limits; zero fields keep the
// defaults.
func WithLimits(l Limits) Option { return func(s *settings) { s.limits = l } }

// InMemory serves the stack without sockets: the services are reachable only
// through Transport and HTTPClient, at http://sts.caracal.internal,
// http://coordinator.caracal.internal, http://gateway.caracal.internal and
// one host under upstream.caracal.internal per resource, named after its ID
// (UpstreamURL gives it). Use it inside
// testing/synctest bubbles, where real network I/O would stall the fake
// clock.
func InMemory() Option { return func(s *settings) { s.inMemory = true } }

// WithoutDefaults starts from an empty zone: no default application,
// resource, grant, risk tag or approval tier. The zone id still defaults to
// "zone-test". Add an application with WithApplication: a stack without one
// does not start.
func WithoutDefaults() Option { return func(s *settings) { s.noDefaults = true } }

// defaultSettings is the seeded zone of a stack without WithoutDefaults.
func defaultSettings() settings {
	return settings{
		apps: []App{{ID: defaultApplication}},
		resources: []Resource{{
			Identifier: defaultResource,
			ID:         "res-tickets",
			Scopes:     []string{"tickets:read", "tickets:write", "tickets:delete"},
		}},
		grants: map[string]resourceGrant{
			defaultResource: {
				Application: defaultApplication,
				Roles: map[string][]string{
					"reader": {"tickets:read"},
					"writer": {"tickets:read", "tickets:write"},
					"admin":  {"tickets:read", "tickets:write", "tickets:delete"},
				},
			},
		},
		risk:  []riskTag{{Scope: "tickets:delete", Tier: "high"}},
		tiers: []ApprovalTier{{Tier: "high", Approver: "operator"}},
	}
}

// resolve merges the options over the defaults.
func resolve(opts []Option) (settings, error) {
	var o settings
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	s := settings{}
	if !o.noDefaults {
		s = defaultSettings()
	}
	s.zone = cmp.Or(o.zone, defaultZone)
	s.clock, s.lease, s.limits, s.inMemory = o.clock, o.lease, o.limits, o.inMemory
	s.extraRoutes = o.extraRoutes
	if s.clock == nil {
		s.clock = systemClock{}
	}
	s.apps = mergeBy(s.apps, o.apps, func(a App) string { return a.ID })
	s.resources = mergeBy(s.resources, o.resources, func(r Resource) string { return r.Identifier })
	s.risk = mergeBy(s.risk, o.risk, func(r riskTag) string { return r.Scope })
	s.tiers = mergeBy(s.tiers, o.tiers, func(t ApprovalTier) string { return t.Tier })
	if s.grants == nil {
		s.grants = map[string]resourceGrant{}
	}
	for id, g := range o.grants {
		s.grants[id] = g
	}

	if s.lease < 0 {
		return s, fmt.Errorf("caracaltest: WithLease(%v): the lease must be positive (0 keeps the default 120 s)", s.lease)
	}
	for _, t := range o.tiers {
		if t.TTL < 0 {
			return s, fmt.Errorf("caracaltest: WithApprovalTier(%q): TTL %v; a hold's TTL must be positive (0 keeps the class default)", t.Tier, t.TTL)
		}
	}
	for name, v := range map[string]int{
		"SessionsPerZone": s.limits.SessionsPerZone, "SessionsPerApp": s.limits.SessionsPerApp,
		"ChildrenPerParent": s.limits.ChildrenPerParent, "MaxDepth": s.limits.MaxDepth,
		"ReceiptsPerScope": s.limits.ReceiptsPerScope, "MintPerMinute": s.limits.MintPerMinute,
		"AuthFailures": s.limits.AuthFailures,
	} {
		if v < 0 {
			return s, fmt.Errorf("caracaltest: Limits.%s is %d; a limit must be positive (0 keeps the default)", name, v)
		}
	}
	if len(s.apps) == 0 {
		return s, errors.New("caracaltest: no application: add one with WithApplication")
	}
	for i := range s.apps {
		if s.apps[i].ID == "" {
			return s, errors.New("caracaltest: an application needs an ID")
		}
		if s.apps[i].Secret == "" {
			s.apps[i].Secret = "cs_" + rand.Text()
		}
	}
	for i := range s.resources {
		r := &s.resources[i]
		if r.Identifier == "" {
			return s, errors.New("caracaltest: a resource needs an Identifier")
		}
		if r.ID == "" {
			r.ID = resourceSlug(r.Identifier)
		}
	}
	for id := range s.grants {
		if !slices.ContainsFunc(s.resources, func(r Resource) bool { return r.Identifier == id }) {
			return s, fmt.Errorf("caracaltest: WithGrant(%q): no such resource; register it with WithResource", id)
		}
	}
	return s, nil
}

// mergeBy appends add to base; an element whose key is already present
// replaces the earlier one in place.
func mergeBy[T any](base, add []T, key func(T) string) []T {
	out := slices.Clone(base)
	for _, v := range add {
		if i := slices.IndexFunc(out, func(e T) bool { return key(e) == key(v) }); i >= 0 {
			out[i] = v
		} else {
			out = append(out, v)
		}
	}
	return out
}
