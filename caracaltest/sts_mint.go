package caracaltest

import (
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/caracal-go/caracal/internal/wire"
)

// hasUpstream reports whether a resource has an upstream_url, which makes
// agent:lifecycle mintable on it.
func (w *world) hasUpstream(r *resource) bool {
	if r.upstreamURL != "" {
		return true
	}
	_, ok := w.upstreams[r.identifier]
	return ok
}

// mintable reports whether every scope is among the resource's mintable
// scopes (PROTOCOL §3.6 rule 2).
func (w *world) mintable(r *resource, scopes []string) bool {
	for _, s := range scopes {
		if !slices.Contains(r.scopes, s) && (s != wire.ScopeLifecycle || !w.hasUpstream(r)) {
			return false
		}
	}
	return true
}

// takeMint counts one mint against the (resource, application) fixed window
// and reports whether it is within the limit.
func (w *world) takeMint(r *resource, appID string, now time.Time) bool {
	k := mintKey{resource: r.identifier, app: appID}
	mw := w.mintCounts[k]
	if mw == nil || now.Sub(mw.start) >= mintPeriod {
		mw = &mintWindow{start: now}
		w.mintCounts[k] = mw
	}
	mw.count++
	return mw.count <= w.limits.MintPerMinute
}

// owns reports whether the policy grants name app as the resource's owner.
func (w *world) owns(r *resource, appID string) bool {
	g, ok := w.policy.Grants[r.identifier]
	return ok && g.Application == appID
}

// rolesCover reports whether some label is a role of the resource's grant
// whose scope list covers every scope.
func (w *world) rolesCover(r *resource, labels, scopes []string) bool {
	g := w.policy.Grants[r.identifier]
	for _, l := range labels {
		role, ok := g.Roles[l]
		if ok && subset(scopes, role) {
			return true
		}
	}
	return false
}

// subset reports whether every element of a is in b.
func subset(a, b []string) bool {
	for _, s := range a {
		if !slices.Contains(b, s) {
			return false
		}
	}
	return true
}

// judgeResources judges each requested resource on its own (PROTOCOL §3.6
// rules 1-6, §3.7 rows 18-22): unknown resources, scopes the resource cannot
// mint, resources outside the edge (inside, when given) and mints over the
// rate limit are skipped; deny names the policy reason a resource is refused
// for, "" allowing it. It returns the allowed identifiers, sorted, or the
// policy denial of the last refusal.
func (w *world) judgeResources(req *tokenRequest, app *application, now time.Time,
	inside func(*resource) bool, deny func(*resource) string,
) ([]string, *stsFailure) {
	var allowed []string
	reason := ""
	for _, id := range req.resources {
		r := w.resolveResource(id)
		if r == nil || !w.mintable(r, req.scopes) || (inside != nil && !inside(r)) || !w.takeMint(r, app.id, now) {
			continue
		}
		if r.identifier == controlAudience {
			return nil, denied("the control resource is mintable only by a control key")
		}
		if reason = deny(r); reason == "" && !slices.Contains(allowed, r.identifier) {
			allowed = append(allowed, r.identifier)
		}
	}
	if len(allowed) == 0 {
		return nil, policyDenied(reason)
	}
	sort.Strings(allowed)
	return allowed, nil
}

// applicationClaims are the claims of a token issued to app itself.
func (w *world) applicationClaims(app *application, scope, use string, targets []string) *tokenClaims {
	c := &tokenClaims{ClientID: app.id, Scope: scope, Use: use, SubType: "application", Target: targets}
	c.Subject = app.id
	c.Audience = []string{w.issuer}
	return c
}

// bootstrap issues a lifecycle (use=session) token (PROTOCOL §3.6).
func (w *world) bootstrap(req *tokenRequest, app *application, now time.Time) (*tokenResult, *stsFailure) {
	allowed, f := w.judgeResources(req, app, now, nil, func(r *resource) string {
		switch {
		case len(req.scopes) != 1 || req.scopes[0] != wire.ScopeLifecycle || req.agentSessionID != "":
			return "no_rule_matched"
		case !w.owns(r, app.id):
			return "resource_not_granted"
		}
		return ""
	})
	if f != nil {
		return nil, f
	}
	life, f := tokenLifetime(req.ttl, tokenTTLCap)
	if f != nil {
		return nil, f
	}
	c := w.applicationClaims(app, req.scope, wire.UseSession, allowed)
	res, _, f := w.finish(c, recordSpec{sessionType: "application", subjectID: app.id}, now, life)
	return res, f
}

// finish records and signs a token and builds the exchange result.
func (w *world) finish(c *tokenClaims, spec recordSpec, now time.Time, life time.Duration) (*tokenResult, *authorityRecord, *stsFailure) {
	tok, rec, err := w.issue(c, spec, now, life)
	if err != nil {
		return nil, nil, fail(http.StatusInternalServerError, "internal_error", "token issuance failed")
	}
	return &tokenResult{token: tok, expiresIn: int(life / time.Second), scope: c.Scope, targets: c.Target}, rec, nil
}

// tokenLifetime applies the requested ttl_seconds rules (PROTOCOL §3.6 rule 7).
func tokenLifetime(ttl int, limit time.Duration) (time.Duration, *stsFailure) {
	switch {
	case ttl < 0:
		return 0, badRequest("ttl_seconds must be positive")
	case ttl > int(limit/time.Second): // in seconds: ttl*time.Second can overflow
		return 0, badRequest("ttl_seconds exceeds token TTL cap")
	case ttl == 0:
		return defaultTokenTTL, nil
	}
	return time.Duration(ttl) * time.Second, nil
}

// delegation is a validated (session, edge) pair of a delegated exchange.
type delegation struct {
	target *session
	source *session
	edge   *edge
	c      edgeConstraints
	path   []*edge // root-most first, presented edge last
}

// edgeConstraints is the strict STS view of constraints_json. budget is not
// part of it: the v1 STS refuses an edge that carries one (PROTOCOL
// "Verified live").
type edgeConstraints struct {
	resources  []string
	maxHops    int
	ttlSeconds int
	expiresAt  string
}

// stsConstraints decodes constraints_json as strictly as the v1 STS does.
func stsConstraints(c wire.Constraints) (edgeConstraints, bool) {
	if c.Budget != 0 {
		return edgeConstraints{}, false
	}
	out := edgeConstraints{resources: c.Resources, maxHops: c.MaxHops, ttlSeconds: c.TTLSeconds, expiresAt: c.ExpiresAt}
	if out.maxHops == 0 {
		out.maxHops = c.MaxDepth
	}
	if out.maxHops == 0 {
		out.maxHops = defaultMaxHops
	}
	return out, true
}

// checkDelegation applies PROTOCOL §3.7 rows 7–12 to a (session, edge) pair
// presented by appID.
func (w *world) checkDelegation(sessionID, edgeID, appID string, now time.Time) (*delegation, *stsFailure) {
	e := w.edges[edgeID]
	if e == nil || e.status != wire.StatusActive || !e.expiresAt.After(now) {
		return nil, denied("delegation edge inactive or expired")
	}
	if e.target != sessionID {
		return nil, denied("delegation edge target mismatch")
	}
	src := w.sessions[e.source]
	if !w.sessionMintable(src) {
		return nil, denied("delegation source inactive or expired")
	}
	tgt := w.sessions[sessionID]
	if !w.sessionMintable(tgt) || tgt.app != appID {
		return nil, denied("delegation target inactive or unauthorized")
	}
	if src.app != e.issuer || tgt.app != e.receiver {
		return nil, denied("delegation application mismatch")
	}
	c, ok := stsConstraints(e.constraints)
	if !ok {
		return nil, denied("delegation constraints invalid")
	}
	return &delegation{target: tgt, source: src, edge: e, c: c}, nil
}

// checkLineage applies rows 15–17: the hop cap, the lineage walk of
// PROTOCOL §6.6 and the chain's continuity.
func (w *world) checkLineage(d *delegation) *stsFailure {
	if d.c.maxHops > 10 {
		return denied("delegation hop limit exceeds platform maximum")
	}
	path, ok := w.edgePath(d.edge.id)
	if !ok {
		return denied("delegation path invalid")
	}
	for i := 1; i < len(path); i++ {
		if path[i-1].target != path[i].source {
			return denied("delegation chain discontinuous")
		}
	}
	if path[len(path)-1].target != d.target.id {
		return denied("delegation chain endpoints mismatch")
	}
	d.path = path
	return nil
}

// insideEdge reports whether the resource is within the edge's resource scope
// (row 18).
func (d *delegation) insideEdge(r *resource) bool {
	if d.edge.resourceID != "" && d.edge.resourceID != r.id {
		return false
	}
	return len(d.c.resources) == 0 || slices.Contains(d.c.resources, r.identifier)
}

// lifetime applies row 24: the requested lifetime, then the clamps of
// the edge's remaining life and its constraints.
func (d *delegation) lifetime(ttl int, limit time.Duration, now time.Time) (time.Duration, *stsFailure) {
	life, f := tokenLifetime(ttl, limit)
	if f != nil {
		return 0, f
	}
	life = min(life, d.edge.expiresAt.Sub(now))
	if d.c.ttlSeconds > 0 {
		life = min(life, time.Duration(d.c.ttlSeconds)*time.Second)
	}
	if d.c.expiresAt != "" {
		t, err := wire.ParseTime(d.c.expiresAt)
		if err != nil {
			return 0, denied("delegation constraint expiry invalid")
		}
		if !t.After(now) {
			return 0, denied("delegation constraint expired")
		}
		life = min(life, t.Sub(now))
	}
	if life < time.Second {
		return 0, denied("effective delegation ttl expired")
	}
	return life.Truncate(time.Second), nil
}

// policyData reports malformed risk or approval-tier data.
func (w *world) policyData() string {
	for _, r := range w.policy.Risk {
		if r.Scope == "" || r.Tier == "" {
			return "malformed_risk_data"
		}
	}
	for _, t := range w.policy.ApprovalTiers {
		if t.Tier == "" || (t.Approver != "operator" && t.Approver != "subject" && t.Approver != "any") || t.TTL < 0 {
			return "malformed_approval_data"
		}
	}
	return ""
}

// mint issues a per-request gateway mandate (PROTOCOL §3.7).
func (w *world) mint(req *tokenRequest, app *application, binding string, held *approval, now time.Time) (*tokenResult, *stsFailure) {
	d, f := w.checkDelegation(req.agentSessionID, req.edgeID, app.id, now)
	if f != nil {
		return nil, f
	}
	if !subset(req.scopes, d.edge.scopes) {
		return nil, denied("requested scopes exceed delegation scopes")
	}
	if d.c.ttlSeconds > 0 && req.ttl > d.c.ttlSeconds {
		return nil, denied("requested ttl exceeds delegation ttl")
	}
	if f := w.checkLineage(d); f != nil {
		return nil, f
	}
	allowed, f := w.judgeResources(req, app, now, d.insideEdge, func(r *resource) string {
		switch {
		case len(req.scopes) == 0 || slices.Contains(req.scopes, wire.ScopeLifecycle):
			return "no_rule_matched"
		case !subset(req.scopes, d.edge.scopes):
			return "delegation_scope_exceeded"
		case w.policyData() != "":
			return w.policyData()
		case !w.owns(r, app.id):
			return "resource_not_granted"
		case !w.rolesCover(r, d.target.labels, req.scopes):
			return "role_scope_mismatch"
		}
		return ""
	})
	if f != nil {
		return nil, f
	}
	if held == nil {
		var f *stsFailure
		held, f = w.gate(req, app.id, binding, allowed, now)
		if f != nil {
			return nil, f
		}
	}
	life, f := d.lifetime(req.ttl, tokenTTLCap, now)
	if f != nil {
		return nil, f
	}
	c := w.applicationClaims(app, req.scope, wire.UseGateway, allowed)
	c.setDelegation(d.path, w.epoch)
	res, rec, f := w.finish(c, recordSpec{sessionType: "application", subjectID: app.id}, now, life)
	if f != nil {
		return nil, f
	}
	if held != nil {
		w.consume(held, c, rec, res, now)
	}
	return res, nil
}
