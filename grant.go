package caracal

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/caracal-go/caracal/internal/wire"
)

// Delegation limits the Coordinator enforces (PROTOCOL §6.4), checked
// locally so that a bad grant fails before anything is started.
const (
	maxHopsLimit      = 10
	maxGrantResources = 64
	maxGrantTTL       = 24 * time.Hour
)

type grantMode uint8

const (
	grantInherit grantMode = iota
	grantNone
	grantNarrow
)

// GrantBuilder is the type of Grant; its methods build an Authority.
type GrantBuilder struct{}

// Grant builds the authority a child session receives (WithGrant) or a
// delegation gives (Delegate):
//
//	caracal.Grant.Inherit()  // the parent's effective authority (default)
//	caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, 10*time.Minute)
//	caracal.Grant.None()     // no inherited authority
var Grant GrantBuilder

// Authority is a grant built by Grant. The zero value is Grant.Inherit().
type Authority struct {
	mode        grantMode
	scopes      []string
	resource    string
	constraints Constraints
	ttl         time.Duration
}

// Constraints bound a narrowed delegation beyond its scopes and resource.
type Constraints struct {
	// MaxHops is how many delegation edges a mandate minted under this one
	// may have behind it, 1 to 10; 0 leaves the server's default of 1. An
	// edge d edges deep (a root's narrowed child: 1) mints only with
	// MaxHops >= d, and an edge allows at most one hop less than its parent
	// (PROTOCOL §6.5, §6.6). So an inheriting child of a narrowed agent
	// needs that agent's edge at 2 (the child's copy keeps it), and a
	// narrowed or delegated grandchild needs MaxHops 2 under a parent edge
	// of at least 3. Grants that could never mint are refused with
	// ErrInvalidGrant before any call, when the parent's edge is known.
	MaxHops int
	// Budget is kept for compatibility with earlier Caracal releases and
	// must be 0: a Caracal v1 STS refuses every mint under a delegation that
	// carries it, so a non-zero Budget fails with ErrBudgetUnsupported
	// before anything is started.
	Budget int
	// Resources scope the delegation to these resource identifiers (at
	// most 64) in place of the Narrow resource: pass "" as that resource
	// for a delegation usable on each of them. A Narrow resource given as
	// well must be among them, and the delegation is then usable on that
	// resource alone (the STS checks an edge's resource before its list).
	Resources []string
	// ExpiresAt, if set, is the delegation's absolute expiry; it wins over
	// the TTL for the edge's lifetime.
	ExpiresAt time.Time
}

// Inherit gives the child the delegation its parent presents: the
// Coordinator copies the parent's edge, with its scopes, resources and
// limits, to the child. A child of a root session gets none, as its parent
// holds none: it can manage sessions but not call resources (Grant.Narrow
// gives it some). It is the default.
func (GrantBuilder) Inherit() Authority { return Authority{mode: grantInherit} }

// None gives the child no inherited authority: it can manage sessions but
// cannot call resources until something delegates to it.
func (GrantBuilder) None() Authority { return Authority{mode: grantNone} }

// Narrow gives the child a subset of its parent's authority: scopes on
// resource (a resource identifier such as "resource://tickets") until ttl.
// A child that uses the scopes also needs a label whose role grants them.
//
// An empty resource means the client's only configured resource (an error
// when it has several, unless c.Resources scopes the grant). A zero ttl
// means the child's lifetime: its WithTTL, else Config.DefaultTTL, else one
// hour; 24 hours for a service. A negative ttl, or one over 24 hours, is
// refused with ErrInvalidGrant. Delegate needs a ttl or c.ExpiresAt. Under
// a parent narrowed by this process, a default ttl is shortened to fit
// inside the parent's delegation, and anything knowably wider than the
// parent's (more scopes, another resource, a later expiry, more hops) is
// refused with ErrInvalidGrant before any call; the Coordinator refuses the
// rest (ErrAccessDenied). The slices are copied.
//
// The Gateway refuses a mandate that expires within 35 s, and no mandate
// outlives its delegation: a delegation is usable through the Gateway until
// 35 s before it ends, and one with a ttl of 35 s or less never is (the
// transport then fails the request with ErrInvalidGrant).
func (GrantBuilder) Narrow(scopes []string, resource string, c Constraints, ttl time.Duration) Authority {
	c.Resources = slices.Clone(c.Resources)
	return Authority{mode: grantNarrow, scopes: slices.Clone(scopes), resource: resource, constraints: c, ttl: ttl}
}

// String describes the grant.
func (a Authority) String() string {
	switch a.mode {
	case grantNone:
		return "none"
	case grantNarrow:
		return fmt.Sprintf("narrow(%s on %s, ttl %v)", strings.Join(a.scopes, " "), a.resource, a.ttl)
	}
	return "inherit"
}

// edgeGrant is what this process knows of a delegation edge's authority.
type edgeGrant struct {
	scopes    []string
	resources []string  // identifiers; empty when unknown
	expiresAt time.Time // as the Coordinator wrote it; zero when unknown
	// localEnd is expiresAt on this process's clock (it may be off the
	// Coordinator's); zero when only expiresAt is known.
	localEnd time.Time
	maxHops  int // 0: the server default (1)
	ttl      time.Duration
	// depth is how many edges deep the edge sits (a root edge: 1); 0 when
	// unknown.
	depth int
}

// end is when the edge ends on this process's clock.
func (e *edgeGrant) end() time.Time {
	if !e.localEnd.IsZero() {
		return e.localEnd
	}
	return e.expiresAt
}

// mirrored is what is known of an edge the Coordinator copied from e to a
// child (PROTOCOL §6.2): the same authority, one edge deeper.
func (e *edgeGrant) mirrored() *edgeGrant {
	if e == nil {
		return nil
	}
	m := *e
	if m.depth > 0 {
		m.depth++
	}
	return &m
}

// edgeDepth is how many edges deep the edge a presents sits: 0 for none,
// -1 when this process has no record of it (an accepted edge, or one bound
// from a request). The hop count does not stand in: it counts the edges a
// context passed through here, so a Grant.None child that then accepts a
// root edge has hop 2 for an edge one deep.
func (a *Agent) edgeDepth() int {
	switch {
	case a.delegationID == "":
		return 0
	case a.edge != nil && a.edge.depth > 0:
		return a.edge.depth
	}
	return -1
}

// narrowPlan is a checked Narrow, ready to be sent.
type narrowPlan struct {
	scopes      []string
	resource    string   // resource_id, or "" when constraints.resources scope the edge
	resources   []string // every identifier the edge is scoped to
	constraints Constraints
	ttlSeconds  int
	// depth is how many edges deep the new edge sits: one more than the
	// edge the source presents, 1 when it presents none (a root edge), 0
	// when the depth of the source's edge is not known.
	depth int
}

func invalidGrant(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidGrant}, args...)...)
}

// planNarrow checks g locally against the client's configuration and what
// is known of source's own edge. defaultTTL applies when g has neither a
// TTL nor an expiry; 0 makes one mandatory.
func (c *Client) planNarrow(g Authority, source *Agent, defaultTTL time.Duration) (narrowPlan, error) {
	k := g.constraints
	if k.Budget != 0 {
		return narrowPlan{}, ErrBudgetUnsupported
	}
	p := narrowPlan{scopes: wire.NormalizeScopes(g.scopes), constraints: k}
	if d := source.edgeDepth(); d >= 0 {
		p.depth = d + 1
	}
	if len(p.scopes) == 0 {
		return narrowPlan{}, invalidGrant("Grant.Narrow needs at least one scope")
	}
	if slices.Contains(p.scopes, wire.ScopeLifecycle) {
		return narrowPlan{}, invalidGrant("%s cannot be delegated", wire.ScopeLifecycle)
	}
	if k.MaxHops < 0 || k.MaxHops > maxHopsLimit {
		return narrowPlan{}, invalidGrant("MaxHops %d is outside 1..%d (0 = server default 1)", k.MaxHops, maxHopsLimit)
	}
	if g.ttl < 0 || g.ttl > maxGrantTTL {
		return narrowPlan{}, invalidGrant("the TTL %v is outside 0..%v", g.ttl, maxGrantTTL)
	}
	now := time.Now()
	if !k.ExpiresAt.IsZero() && !k.ExpiresAt.After(now) {
		return narrowPlan{}, invalidGrant("Constraints.ExpiresAt %s is not in the future", k.ExpiresAt.Format(time.RFC3339))
	}
	if !k.ExpiresAt.IsZero() && k.ExpiresAt.Sub(now) < time.Second {
		// A TTL derived from it (whole seconds, rounded down) would be
		// zero, and the expiry itself past by the time the Coordinator
		// checks it.
		return narrowPlan{}, invalidGrant("Constraints.ExpiresAt %s is less than a second away", k.ExpiresAt.Format(time.RFC3339))
	}

	if err := c.scopeResources(&p, g); err != nil {
		return narrowPlan{}, err
	}

	// Lifetime, in the whole seconds it is sent as.
	ttl, defaulted := time.Duration(ceilSeconds(g.ttl))*time.Second, false
	if ttl == 0 && k.ExpiresAt.IsZero() {
		if defaultTTL <= 0 {
			return narrowPlan{}, invalidGrant("a delegation needs a TTL or Constraints.ExpiresAt")
		}
		ttl, defaulted = time.Duration(ceilSeconds(defaultTTL))*time.Second, true
	}

	if e := source.edge; e != nil {
		if err := p.checkParent(e, k.MaxHops); err != nil {
			return narrowPlan{}, err
		}
		var err error
		if ttl, err = fitParentLifetime(e, g, ttl, defaulted, defaultTTL, now); err != nil {
			return narrowPlan{}, err
		}
	}
	if ttl > 0 {
		p.ttlSeconds = ceilSeconds(ttl)
	}
	return p, nil
}

// scopeResources sets the resources p's edge is scoped to: the edge must be
// resource-scoped, as a lifecycle token cannot create a broad delegation.
func (c *Client) scopeResources(p *narrowPlan, g Authority) error {
	var listed []string
	for _, r := range g.constraints.Resources {
		r = strings.TrimSpace(r)
		if r == "" {
			return invalidGrant("Constraints.Resources has an empty resource")
		}
		if !slices.Contains(listed, r) {
			listed = append(listed, r)
		}
	}
	if len(listed) > maxGrantResources {
		return invalidGrant("at most %d resources", maxGrantResources)
	}
	p.constraints.Resources = listed
	p.resource = strings.TrimSpace(g.resource)
	if p.resource == "" && len(listed) == 0 {
		aud := c.cfg.audience()
		if len(aud) != 1 {
			return invalidGrant("Grant.Narrow needs a resource identifier (the client has %d configured resources: %s); pass it as Narrow's resource argument",
				len(aud), strings.Join(aud, ", "))
		}
		p.resource = aud[0]
	}
	if p.resource != "" && len(listed) > 0 && !slices.Contains(listed, p.resource) {
		return invalidGrant("resource %s is not among Constraints.Resources %v", p.resource, listed)
	}
	p.resources = listed
	if len(listed) == 0 {
		p.resources = []string{p.resource}
	}
	return nil
}

// checkParent refuses what is knowably wider than the parent's edge e:
// another scope or resource, or hops the Coordinator would refuse or that
// leave the new edge unable to mint. maxHops is the grant's MaxHops.
func (p *narrowPlan) checkParent(e *edgeGrant, maxHops int) error {
	for _, s := range p.scopes {
		if !slices.Contains(e.scopes, s) {
			return invalidGrant("scope %s is wider than the parent's delegation (%q)", s, e.scopes)
		}
	}
	if len(e.resources) > 0 {
		for _, r := range p.resources {
			if !slices.Contains(e.resources, r) {
				return invalidGrant("resource %s is outside the parent's delegation (%q)", r, e.resources)
			}
		}
	}
	// The new edge sits depth edges deep, and an edge mints only with
	// MaxHops >= its depth (PROTOCOL §6.6); the parent's must exceed
	// the child's (§6.5 rule 4). An edge that cannot mint is refused:
	// neither it nor anything under it could ever use a resource. When
	// the depth is not known, only the Coordinator's rule is checked.
	depth := p.depth
	parentHops := max(e.maxHops, 1)
	if parentHops < 2 && depth == 0 {
		return invalidGrant("the parent's delegation (MaxHops %d) allows no delegation under it; give the parent's Grant.Narrow Constraints.MaxHops >= 2", parentHops)
	}
	if parentHops <= depth {
		return invalidGrant("the parent's delegation (MaxHops %d) leaves no usable hop for an edge %d deep; give the parent's Grant.Narrow Constraints.MaxHops >= %d and this one %d", parentHops, depth, depth+1, depth)
	}
	child := max(maxHops, 1)
	if child > parentHops-1 {
		return invalidGrant("MaxHops %d is wider than the parent's delegation allows (at most %d)", child, parentHops-1)
	}
	if child < depth {
		return invalidGrant("an edge %d deep can mint only with MaxHops >= %d; give this grant Constraints.MaxHops %d", depth, depth, depth)
	}
	return nil
}

// fitParentLifetime fits ttl, the lifetime the grant g sends (defaulted when
// it is the default TTL, which is shortened to fit rather than refused),
// inside the parent's edge e, and returns the ttl to send.
func fitParentLifetime(e *edgeGrant, g Authority, ttl time.Duration, defaulted bool, defaultTTL time.Duration, now time.Time) (time.Duration, error) {
	k := g.constraints
	if e.ttl > 0 {
		// The parent's TTL caps its children's (and a child must then
		// carry one).
		switch {
		case ttl == 0:
			ttl = min(e.ttl, time.Until(k.ExpiresAt).Truncate(time.Second))
			if ttl <= 0 {
				// The child must carry a TTL, and none is left.
				return 0, invalidGrant("Constraints.ExpiresAt %s is less than a second away", k.ExpiresAt.Format(time.RFC3339))
			}
		case ttl > e.ttl && defaulted:
			ttl = e.ttl
		case ttl > e.ttl:
			return 0, invalidGrant("the TTL %v is longer than the parent's delegation TTL %v; %s", g.ttl, e.ttl, fitAdvice(e, defaultTTL))
		}
	}
	if !e.expiresAt.IsZero() {
		// As sent: in whole milliseconds (wire.CoordinatorTime).
		if !k.ExpiresAt.IsZero() && k.ExpiresAt.Truncate(time.Millisecond).After(e.expiresAt) {
			return 0, invalidGrant("Constraints.ExpiresAt %s is after the parent's delegation expiry %s", k.ExpiresAt.Format(time.RFC3339), e.expiresAt.Format(time.RFC3339))
		}
		// The Coordinator adds the TTL to its own now: compared on this
		// process's clock, as the parent's end is known here.
		if end := now.Add(ttl); k.ExpiresAt.IsZero() && end.After(e.end()) {
			if !defaulted {
				return 0, invalidGrant("the TTL %v (sent as %v) runs past the parent's delegation expiry %s; %s", g.ttl, ttl, e.expiresAt.Format(time.RFC3339), fitAdvice(e, defaultTTL))
			}
			// Fit a default inside the parent, a second short to absorb
			// the rounding to whole seconds.
			ttl = time.Until(e.end()).Truncate(time.Second) - time.Second
			if ttl <= 0 {
				return 0, invalidGrant("the parent's delegation expires at %s; nothing is left to narrow", e.expiresAt.Format(time.RFC3339))
			}
		}
	}
	return ttl, nil
}

// fitAdvice says which TTL fits a narrowing inside the parent's delegation
// e: a TTL of 0 does where a default applies (a spawn; Delegate has none).
func fitAdvice(e *edgeGrant, defaultTTL time.Duration) string {
	left := time.Until(e.end()).Truncate(time.Second)
	if left <= 0 {
		return "nothing is left of it to narrow"
	}
	shorter := fmt.Sprintf("pass a TTL shorter than the %v it has left", left)
	if defaultTTL > 0 {
		return "a TTL of 0 fits the delegation inside the parent's, or " + shorter
	}
	return shorter
}

// request is the delegation create from source to the session target.
func (p narrowPlan) request(source *Agent, target, receiver string) wire.CreateDelegationRequest {
	req := wire.CreateDelegationRequest{
		SourceSessionID:       source.sessionID,
		TargetSessionID:       target,
		IssuerApplicationID:   source.applicationID,
		ReceiverApplicationID: receiver,
		ParentEdgeID:          source.delegationID,
		ResourceID:            p.resource,
		Scopes:                p.scopes,
		TTLSeconds:            p.ttlSeconds,
	}
	k := wire.Constraints{MaxHops: p.constraints.MaxHops, Resources: p.constraints.Resources}
	if !p.constraints.ExpiresAt.IsZero() {
		k.ExpiresAt = wire.CoordinatorTime(p.constraints.ExpiresAt)
	}
	if !k.IsZero() {
		req.Constraints = &k
	}
	return req
}

// granted is what the created edge d is known to allow. sent is when the
// request that created it was sent (zero when unknown): the edge's lifetime
// on the Coordinator's clock, counted from then, is its end on this
// process's clock, never later than the real one.
func (p narrowPlan) granted(d wire.Delegation, sent time.Time) *edgeGrant {
	e := &edgeGrant{scopes: p.scopes, resources: p.resources, maxHops: p.constraints.MaxHops, depth: p.depth}
	if len(d.Scopes) > 0 {
		e.scopes = wire.NormalizeScopes(d.Scopes)
	}
	if d.EffectiveAuthority != nil {
		if len(d.EffectiveAuthority.Resources) > 0 {
			e.resources = slices.Clone(d.EffectiveAuthority.Resources)
		}
		if d.EffectiveAuthority.MaxHops > 0 {
			e.maxHops = d.EffectiveAuthority.MaxHops
		}
	}
	if p.resource != "" && len(p.constraints.Resources) > 0 {
		// An edge with a resource_id lets its children resolve only to that
		// resource, whatever else it lists (PROTOCOL §6.5 rule 3).
		e.resources = []string{p.resource}
	}
	if t, err := wire.ParseTime(d.ExpiresAt); err == nil {
		e.expiresAt = t
		if c, err := wire.ParseTime(d.CreatedAt); err == nil && !sent.IsZero() {
			e.localEnd = sent.Add(t.Sub(c))
		}
	}
	if s := d.ConstraintsJSON.TTLSeconds; s > 0 {
		e.ttl = time.Duration(min(s, int(maxTTL/time.Second))) * time.Second // the Coordinator's limit
	} else if p.ttlSeconds > 0 {
		e.ttl = time.Duration(p.ttlSeconds) * time.Second
	}
	return e
}
