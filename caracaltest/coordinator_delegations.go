package caracaltest

import (
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/caracal-go/caracal/internal/wire"
)

// edgeFields are the columns of an edge row that every edge body carries
// after its id.
type edgeFields struct {
	ZoneID                string           `json:"zone_id"`
	SourceSessionID       string           `json:"source_session_id"`
	TargetSessionID       string           `json:"target_session_id"`
	IssuerApplicationID   string           `json:"issuer_application_id"`
	ReceiverApplicationID string           `json:"receiver_application_id"`
	ParentEdgeID          *string          `json:"parent_edge_id"`
	ResourceID            *string          `json:"resource_id"`
	Scopes                []string         `json:"scopes"`
	ConstraintsJSON       wire.Constraints `json:"constraints_json"`
	Status                string           `json:"status"`
	ExpiresAt             string           `json:"expires_at"`
	EdgeVersion           int64            `json:"edge_version"`
	RevokedAt             *string          `json:"revoked_at"`
	CreatedAt             string           `json:"created_at"`
}

// delegationCreated is the 201 body of a delegation create (PROTOCOL §4.7).
type delegationCreated struct {
	DelegationEdgeID string `json:"delegation_edge_id"`
	edgeFields
	Warnings           []string                `json:"warnings"`
	AllowReason        []string                `json:"allow_reason"`
	EffectiveAuthority wire.EffectiveAuthority `json:"effective_authority"`
}

func strOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// createDelegation is POST /zones/{zone}/delegations (PROTOCOL §4.7), rows
// in the server's order.
func (w *world) createDelegation(c *call) {
	req, issues := parseDelegationRequest(c.body)
	if issues != nil { // row 1
		c.invalidBody(issues)
		return
	}
	cons, code := parseConstraints(req) // rows 2-4
	if code != "" {
		c.fail(http.StatusBadRequest, code)
		return
	}
	if !req.hasExpiresAt && cons.ExpiresAt == "" && cons.TTLSeconds == 0 { // row 5
		c.fail(http.StatusBadRequest, "delegation_expiry_required")
		return
	}
	if c.p.clientID != req.issuer && !c.p.may("coordinator.delegate_from:"+req.issuer) && !c.p.admin() { // row 6
		c.fail(http.StatusForbidden, "issuer_ownership_required")
		return
	}
	if req.source == req.target { // row 7
		c.fail(http.StatusBadRequest, "self_delegation_denied")
		return
	}
	broad := req.resourceID == "" && len(cons.Resources) == 0
	if broad && !c.p.admin() && !c.p.may("coordinator.delegate_broad") &&
		!c.p.may("coordinator.delegate_broad:"+req.issuer) { // row 8
		c.fail(http.StatusForbidden, "broad_delegation_permission_required")
		return
	}
	if broad {
		cons.PolicyApproved = ptr(true)
		if cons.BroadReason == "" {
			cons.BroadReason = "resource_null_delegation"
		}
	}
	key, dig, done := w.idempotency(c, opDelegationCreate, req.issuer, // row 9
		func() any { return delegationDigest(c.p, req, cons) }, w.edgeLiveForReplay)
	if done {
		return
	}
	now := w.now()
	src, dst := w.sessions[req.source], w.sessions[req.target]
	if src == nil || dst == nil || !src.live(now) || !dst.live(now) { // row 10
		c.fail(http.StatusNotFound, "delegation_endpoint_not_found")
		return
	}
	if src.app != req.issuer || dst.app != req.receiver { // row 11
		c.fail(http.StatusConflict, "delegation_application_mismatch")
		return
	}
	res, resolved, ok := w.delegationResources(c, req, cons) // rows 12-14
	if !ok {
		return
	}
	parent, considered, ok := w.parentEdge(c, src.id, req.parentEdgeID) // rows 15-16
	if !ok {
		return
	}
	var requested time.Time
	switch {
	case req.hasExpiresAt:
		requested = req.expiresAt
	case cons.ExpiresAt != "":
		requested, _ = parseISODatetime(cons.ExpiresAt)
	}
	if parent != nil && !w.narrows(parent, req, cons, resolved, requested) { // row 17
		c.fail(http.StatusForbidden, "delegation_exceeds_parent_authority")
		return
	}
	if w.reaches(dst.id, src.id) { // row 18
		c.fail(http.StatusConflict, "delegation_cycle_denied")
		return
	}
	expires := requested
	if expires.IsZero() {
		expires = now.Add(time.Duration(cons.TTLSeconds) * time.Second)
	}
	// The database keeps microseconds; responses show milliseconds.
	expires = expires.Truncate(time.Microsecond)
	if parent == nil && !expires.After(now) { // row 19
		c.fail(http.StatusBadRequest, "delegation_expired")
		return
	}
	if parent != nil && (!expires.After(now) || expires.After(parent.expiresAt)) { // row 20
		c.fail(http.StatusForbidden, "delegation_exceeds_parent_authority")
		return
	}

	e := &edge{
		id:          newID(),
		source:      src.id,
		target:      dst.id,
		issuer:      req.issuer,
		receiver:    req.receiver,
		scopes:      slices.Clone(req.scopes),
		constraints: cons,
		status:      wire.StatusActive,
		expiresAt:   expires,
		createdAt:   now,
	}
	if parent != nil {
		e.parentEdge = parent.id
	}
	if res != nil {
		e.resourceID = res.id
	}
	w.addEdge(e)

	body := mustJSON(w.delegationCreatedBody(e, resolved, considered, broad))
	if key != "" {
		w.storeReceipt(opDelegationCreate, req.issuer, key, false, dig, http.StatusCreated, body, e.id)
	}
	c.rw.Header().Set("Content-Type", "application/json; charset=utf-8")
	c.rw.WriteHeader(http.StatusCreated)
	_, _ = c.rw.Write(body)
}

// delegationResources resolves the resources of a delegation create (rows
// 12-14): res is the resource_id's, resolved every resource the edge is
// scoped to, in the order their identifiers are listed. On a refusal it has
// answered c and reports false.
func (w *world) delegationResources(c *call, req delegationRequest, cons wire.Constraints) (res *resource, resolved []*resource, ok bool) {
	if req.resourceID != "" {
		if res = w.resolveResource(req.resourceID); res == nil {
			c.fail(http.StatusNotFound, "resource_not_found")
			return nil, nil, false
		}
	}
	for _, id := range cons.Resources {
		r := w.resources[id]
		if r == nil {
			c.fail(http.StatusNotFound, "resource_not_found")
			return nil, nil, false
		}
		if !slices.Contains(resolved, r) {
			resolved = append(resolved, r)
		}
	}
	if res != nil && len(resolved) > 0 && !slices.Contains(resolved, res) { // row 13
		c.fail(http.StatusBadRequest, "delegation_resource_scope_mismatch")
		return nil, nil, false
	}
	if res != nil && !slices.Contains(resolved, res) {
		resolved = append([]*resource{res}, resolved...)
	}
	if len(resolved) > 0 { // row 14
		var declared []string
		for _, r := range resolved {
			declared = append(declared, r.scopes...)
		}
		for _, s := range req.scopes {
			if !slices.Contains(declared, s) {
				c.fail(http.StatusForbidden, "delegation_scopes_exceed_resource")
				return nil, nil, false
			}
		}
	}
	return res, resolved, true
}

// parentEdge picks the parent of an edge from the session source (rows
// 15-16): none for a session with no live inbound edge, else the one
// parentEdgeID names, else its only one. considered lists every live
// inbound edge. On a refusal it has answered c and reports false.
func (w *world) parentEdge(c *call, source, parentEdgeID string) (parent *edge, considered []string, ok bool) {
	inbound := w.liveInbound(source)
	considered = []string{}
	for _, e := range inbound {
		considered = append(considered, e.id)
	}
	switch {
	case len(inbound) == 0:
		// A root edge, whatever parentEdgeID says.
	case parentEdgeID != "":
		for _, e := range inbound {
			if e.id == parentEdgeID {
				parent = e
			}
		}
		if parent == nil {
			c.fail(http.StatusForbidden, "parent_delegation_not_active")
			return nil, nil, false
		}
	case len(inbound) > 1:
		c.fail(http.StatusConflict, "parent_delegation_ambiguous")
		return nil, nil, false
	default:
		parent = inbound[0]
	}
	return parent, considered, true
}

// delegationCreatedBody is the 201 body for the new edge e.
func (w *world) delegationCreatedBody(e *edge, resolved []*resource, considered []string, broad bool) delegationCreated {
	cons := e.constraints
	identifiers := make([]string, 0, len(resolved))
	for _, r := range resolved {
		identifiers = append(identifiers, r.identifier)
	}
	out := delegationCreated{
		DelegationEdgeID: e.id,
		edgeFields:       w.edgeFields(e),
		Warnings:         []string{},
		AllowReason:      []string{"same_zone_endpoints_active", "resource_scope_checked", "source_authority_root", "typed_constraints_validated"},
		EffectiveAuthority: wire.EffectiveAuthority{
			SourceSessionID:       e.source,
			TargetSessionID:       e.target,
			ParentEdgeID:          strOrNil(e.parentEdge),
			ResourceID:            strOrNil(e.resourceID),
			Resources:             identifiers,
			Scopes:                slices.Clone(e.scopes),
			ExpiresAt:             wire.CoordinatorTime(e.expiresAt),
			MaxHops:               e.maxHops(),
			Broad:                 broad,
			ParentEdgesConsidered: considered,
		},
	}
	if cons.TTLSeconds != 0 {
		out.EffectiveAuthority.TTLSeconds = ptr(cons.TTLSeconds)
	}
	if broad {
		out.Warnings = []string{"resource_null_delegation_broadens_resource_matching"}
		out.AllowReason[1] = "broad_delegation_elevated"
	}
	if e.parentEdge != "" {
		out.AllowReason[2] = "parent_authority_narrowed"
	}
	return out
}

// delegationDigest is the normalized delegation request of §4.2.
func delegationDigest(p principal, req delegationRequest, cons wire.Constraints) map[string]any {
	scopes := slices.Clone(req.scopes)
	sort.Strings(scopes)
	var parentEdge, resourceID, expires, ttl any
	if req.parentEdgeID != "" {
		parentEdge = req.parentEdgeID
	}
	if req.resourceID != "" {
		resourceID = req.resourceID
	}
	if req.hasExpiresAt {
		expires = wire.CoordinatorTime(req.expiresAt)
	} else if cons.ExpiresAt == "" {
		ttl = cons.TTLSeconds
	}
	return map[string]any{
		"principal":               map[string]any{"client_id": p.clientID, "subject": p.subject},
		"source_session_id":       req.source,
		"target_session_id":       req.target,
		"issuer_application_id":   req.issuer,
		"receiver_application_id": req.receiver,
		"parent_edge_id":          parentEdge,
		"resource_id":             resourceID,
		"scopes":                  scopes,
		"constraints":             cons,
		"expires_at":              expires,
		"ttl_seconds":             ttl,
	}
}

// edgeLiveForReplay is the replay liveness of a stored delegation result.
func (w *world) edgeLiveForReplay(id string) bool {
	return w.edges[id].live(w.now())
}

// narrows checks that a new edge stays inside its parent edge (§6.5).
func (w *world) narrows(p *edge, req delegationRequest, cons wire.Constraints, resolved []*resource, requested time.Time) bool {
	for _, s := range req.scopes { // 1
		if !slices.Contains(p.scopes, s) {
			return false
		}
	}
	if !requested.IsZero() && requested.After(p.expiresAt) { // 2 (final expiry: row 20)
		return false
	}
	switch { // 3
	case p.resourceID != "":
		if len(resolved) == 0 {
			return false
		}
		for _, r := range resolved {
			if r.id != p.resourceID {
				return false
			}
		}
	case len(p.constraints.Resources) > 0:
		if len(resolved) == 0 {
			return false
		}
		for _, r := range resolved {
			if !slices.Contains(p.constraints.Resources, r.identifier) {
				return false
			}
		}
	}
	childHops := cons.MaxHops
	if childHops == 0 {
		childHops = defaultMaxHops
	}
	if p.maxHops() < 2 || childHops > p.maxHops()-1 { // 4
		return false
	}
	if p.constraints.TTLSeconds > 0 && (cons.TTLSeconds == 0 || cons.TTLSeconds > p.constraints.TTLSeconds) { // 5
		return false
	}
	if p.constraints.Budget > 0 { // 6
		b := cons.Budget
		if b == 0 {
			b = len(req.scopes)
		}
		if b > p.constraints.Budget {
			return false
		}
	}
	return true
}

// reaches reports whether live edges lead from one session to another
// within maxLineageWalk hops.
func (w *world) reaches(from, to string) bool {
	now := w.now()
	seen := map[string]bool{from: true}
	frontier := []string{from}
	for hop := 0; hop < maxLineageWalk && len(frontier) > 0; hop++ {
		var next []string
		for _, sid := range frontier {
			for _, eid := range w.outbound[sid] {
				e := w.edges[eid]
				if !e.live(now) {
					continue
				}
				if e.target == to {
					return true
				}
				if !seen[e.target] {
					seen[e.target] = true
					next = append(next, e.target)
				}
			}
		}
		frontier = next
	}
	return false
}

// revokeDelegation is PATCH /zones/{zone}/delegations/{id}/revoke (§4.8).
func (w *world) revokeDelegation(c *call) {
	e := w.edges[c.r.PathValue("id")]
	if e == nil {
		c.fail(http.StatusNotFound, "delegation_not_found")
		return
	}
	if c.p.clientID != e.issuer && !c.p.may("coordinator.delegate_from:"+e.issuer) && !c.p.admin() {
		c.fail(http.StatusForbidden, "issuer_ownership_required")
		return
	}
	if e.status != wire.StatusActive {
		c.fail(http.StatusNotFound, "delegation_not_found")
		return
	}
	// The edge and its active downstream edges, breadth first, ≤ 10 hops.
	affected := []*edge{e}
	frontier := []*edge{e}
	for hop := 0; hop < maxLineageWalk && len(frontier) > 0; hop++ {
		var next []*edge
		for _, cand := range w.edges {
			if cand.status != wire.StatusActive || slices.Contains(affected, cand) {
				continue
			}
			for _, f := range frontier {
				if cand.parentEdge == f.id {
					next = append(next, cand)
					affected = append(affected, cand)
					break
				}
			}
		}
		frontier = next
	}
	revoked := 0
	for _, a := range affected {
		if w.revokeEdge(a) {
			revoked++
		}
	}
	records := []string{}
	terminated := 0
	for _, a := range affected {
		t := w.sessions[a.target]
		if t == nil {
			continue
		}
		if t.subjectRecordID != "" && !slices.Contains(records, t.subjectRecordID) {
			records = append(records, t.subjectRecordID)
		}
		if t.nonTerminal() {
			terminated += len(w.endSubtree(t.id, wire.StatusTerminated, "delegation_revoked"))
		}
	}
	// [quirk §3.4] the targets' subject records are revoked without the
	// application-type exemption other paths apply.
	for _, r := range records {
		w.revokeRecord(r, "delegation_revoked")
	}
	writeJSON(c.rw, http.StatusOK, wire.RevokeResponse{
		RevokedEdges:       revoked,
		AffectedSessions:   len(records),
		TerminatedSessions: terminated,
	})
}

// edgeFields is the row of e after its id.
func (w *world) edgeFields(e *edge) edgeFields {
	return edgeFields{
		ZoneID:                w.zone,
		SourceSessionID:       e.source,
		TargetSessionID:       e.target,
		IssuerApplicationID:   e.issuer,
		ReceiverApplicationID: e.receiver,
		ParentEdgeID:          strOrNil(e.parentEdge),
		ResourceID:            strOrNil(e.resourceID),
		Scopes:                slices.Clone(e.scopes),
		ConstraintsJSON:       e.constraints,
		Status:                e.status,
		ExpiresAt:             wire.CoordinatorTime(e.expiresAt),
		EdgeVersion:           e.version,
		RevokedAt:             timeOrNil(e.revokedAt),
		CreatedAt:             wire.CoordinatorTime(e.createdAt),
	}
}
