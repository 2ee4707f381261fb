package caracaltest

import (
	"net/http"
	"slices"
	"time"

	"github.com/caracal-go/caracal/internal/wire"
)

// startSession is POST /zones/{zone}/agents (PROTOCOL §4.3), checks in the
// server's order.
func (w *world) startSession(c *call) {
	req, issues := parseStartRequest(c.body)
	if issues != nil {
		c.invalidBody(issues)
		return
	}
	subject := req.subjectSession
	if subject == "" {
		subject = c.p.sid
		if subject == "" {
			c.fail(http.StatusBadRequest, "subject_session_id_required")
			return
		}
	}
	if c.p.clientID != req.applicationID && !c.p.may("coordinator.spawn_for:"+req.applicationID) {
		c.fail(http.StatusForbidden, "application_ownership_required")
		return
	}
	key, dig, done := w.idempotency(c, opSessionStart, req.applicationID,
		func() any { return startDigest(c.p, req, subject) }, w.sessionLiveForReplay)
	if done {
		return
	}
	generated := c.r.Header.Get(wire.HeaderIdempotencyKind) == "generated"
	now := w.now()
	app := w.apps[req.applicationID]
	if app == nil || app.expired {
		c.fail(http.StatusNotFound, "application_not_found")
		return
	}
	isService := req.lifecycle == wire.LifecycleService
	if app.dcr && isService {
		c.fail(http.StatusConflict, "dcr_application_cannot_host_service")
		return
	}
	if app.dcr && req.parentID != "" {
		c.fail(http.StatusConflict, "dcr_application_cannot_be_child")
		return
	}
	if w.activeRecord(subject) == nil {
		c.failWith(http.StatusNotFound, wire.ErrorBody{Error: "session_not_found",
			Detail: "subject_session_id must reference an STS authority_records.id; it defaults to the bearer token's sid"})
		return
	}
	if !w.roomFor(c, app, now) {
		return
	}
	parent, depth, mirrorOf, ok := w.startParent(c, req, isService)
	if !ok {
		return
	}
	if req.parentGiven && req.parentID == "" {
		// "" passes every check as "no parent", then violates the parent
		// foreign key on insert.
		c.internal(http.StatusInternalServerError)
		return
	}

	s := &session{
		id:              newID(),
		app:             req.applicationID,
		parentID:        req.parentID,
		subjectRecordID: subject,
		lifecycle:       req.lifecycle,
		labels:          slices.Clone(req.labels),
		status:          wire.StatusActive,
		depth:           depth,
		startedAt:       now,
		lastActiveAt:    now,
		metadata:        mustJSON(req.metadata),
	}
	if isService {
		s.generation = 1
		s.lastHeartbeatAt = now
		s.deadline = now.Add(w.lease)
	} else {
		ttl := req.ttlSeconds
		if ttl == 0 {
			ttl = int(defaultTaskTTL / time.Second)
		}
		s.ttl = time.Duration(ttl) * time.Second
	}
	w.addSession(s)
	if parent != nil {
		parent.childCount++
	}
	var mirrorID string
	if mirrorOf != nil {
		m := &edge{
			id:          newID(),
			source:      parent.id,
			target:      s.id,
			issuer:      mirrorOf.receiver,
			receiver:    s.app,
			parentEdge:  mirrorOf.id,
			resourceID:  mirrorOf.resourceID,
			scopes:      slices.Clone(mirrorOf.scopes),
			constraints: cloneConstraints(mirrorOf.constraints),
			status:      wire.StatusActive,
			expiresAt:   mirrorOf.expiresAt,
			createdAt:   now,
		}
		w.addEdge(m)
		mirrorID = m.id
	}
	body := mustJSON(w.sessionWire(s, mirrorID))
	if key != "" {
		w.storeReceipt(opSessionStart, req.applicationID, key, generated, dig, http.StatusCreated, body, s.id)
	}
	c.rw.Header().Set("Content-Type", "application/json; charset=utf-8")
	c.rw.WriteHeader(http.StatusCreated)
	_, _ = c.rw.Write(body)
}

// roomFor checks the zone's and app's session limits for one more session
// of app. On a refusal it has answered c and reports false.
func (w *world) roomFor(c *call, app *application, now time.Time) bool {
	zoneLive, appLive := 0, 0
	for _, s := range w.open {
		if s.liveForCapacity(now) {
			zoneLive++
			if s.app == app.id {
				appLive++
			}
		}
	}
	if zoneLive >= w.limits.SessionsPerZone {
		c.fail(http.StatusTooManyRequests, "session_zone_limit_exceeded")
		return false
	}
	if app.dcr && appLive > 0 {
		c.fail(http.StatusConflict, "dcr_application_already_bound")
		return false
	}
	if appLive >= w.limits.SessionsPerApp {
		c.fail(http.StatusTooManyRequests, "session_limit_exceeded")
		return false
	}
	return true
}

// startParent checks the parent a start names, if any: it must be active,
// may start this child, and has room for it. depth is the child's, and
// mirrorOf the parent's edge an inheriting child gets a copy of. On a
// refusal it has answered c and reports false.
func (w *world) startParent(c *call, req startRequest, isService bool) (parent *session, depth int, mirrorOf *edge, ok bool) {
	if req.parentID == "" {
		return nil, 0, nil, true
	}
	parent = w.sessions[req.parentID]
	if parent == nil || parent.status != wire.StatusActive {
		c.fail(http.StatusNotFound, "parent_not_found")
		return nil, 0, nil, false
	}
	if papp := w.apps[parent.app]; papp != nil && papp.dcr {
		c.fail(http.StatusConflict, "dcr_application_cannot_start_child")
		return nil, 0, nil, false
	}
	if parent.lifecycle == wire.LifecycleTask && isService {
		c.fail(http.StatusConflict, "task_session_cannot_start_service")
		return nil, 0, nil, false
	}
	if parent.app != req.applicationID && !c.p.may("coordinator.spawn_under:"+parent.app) {
		c.fail(http.StatusForbidden, "parent_ownership_required")
		return nil, 0, nil, false
	}
	if parent.childCount >= w.limits.ChildrenPerParent {
		c.fail(http.StatusTooManyRequests, "session_children_limit_exceeded")
		return nil, 0, nil, false
	}
	depth = parent.depth + 1
	if depth > w.limits.MaxDepth {
		c.fail(http.StatusTooManyRequests, "session_depth_limit_exceeded")
		return nil, 0, nil, false
	}
	if req.authority == wire.AuthorityInherit {
		var code string
		mirrorOf, code = w.resolveInherit(parent.id, req.applicationID, req.inheritEdgeID)
		if code != "" {
			c.fail(http.StatusConflict, code)
			return nil, 0, nil, false
		}
	}
	return parent, depth, mirrorOf, true
}

// startDigest is the normalized start request the idempotency digest covers.
func startDigest(p principal, req startRequest, subject string) map[string]any {
	var ttl any
	if req.lifecycle == wire.LifecycleTask {
		ttl = req.ttlSeconds
		if req.ttlSeconds == 0 {
			ttl = int(defaultTaskTTL / time.Second)
		}
	}
	var parent, inherit any
	if req.parentGiven {
		parent = req.parentID
	}
	if req.inheritEdgeID != "" {
		inherit = req.inheritEdgeID
	}
	return map[string]any{
		"principal":                   map[string]any{"client_id": p.clientID, "subject": p.subject},
		"application_id":              req.applicationID,
		"subject_authority_record_id": subject,
		"parent_id":                   parent,
		"lifecycle":                   req.lifecycle,
		"labels":                      req.labels,
		"ttl_seconds":                 ttl,
		"parent_authority":            req.authority,
		"inherit_parent_edge_id":      inherit,
		"metadata":                    req.metadata,
	}
}

// sessionLiveForReplay is the replay liveness of a stored session result.
func (w *world) sessionLiveForReplay(id string) bool {
	s := w.sessions[id]
	return s != nil && s.liveForCapacity(w.now())
}

// resolveInherit applies PROTOCOL §6.2 for a child of app under parentID:
// the edge to mirror (nil: start edge-less) or a 409 code.
func (w *world) resolveInherit(parentID, app, explicit string) (*edge, string) {
	now := w.now()
	var live []*edge
	dead := false
	for _, id := range w.inbound[parentID] {
		e := w.edges[id]
		if e.receiver != app || (explicit != "" && e.id != explicit) {
			continue
		}
		if e.live(now) {
			live = append(live, e)
		} else {
			dead = true
		}
	}
	switch {
	case len(live) == 0 && (explicit != "" || dead):
		return nil, "inherit_parent_edge_not_active"
	case len(live) == 0:
		return nil, ""
	case len(live) > 1:
		return nil, "inherit_parent_edge_ambiguous"
	}
	return live[0], ""
}

func cloneConstraints(c wire.Constraints) wire.Constraints {
	c.Resources = slices.Clone(c.Resources)
	if c.PolicyApproved != nil {
		b := *c.PolicyApproved
		c.PolicyApproved = &b
	}
	return c
}

// sessionWire is the start response row.
func (w *world) sessionWire(s *session, edgeID string) wire.Session {
	out := wire.Session{
		AgentSessionID:           s.id,
		ZoneID:                   w.zone,
		ApplicationID:            s.app,
		SubjectAuthorityRecordID: s.subjectRecordID,
		Lifecycle:                s.lifecycle,
		Labels:                   slices.Clone(s.labels),
		Status:                   s.status,
		Depth:                    s.depth,
		StartedAt:                wire.CoordinatorTime(s.startedAt),
		LeaseGeneration:          wire.Int64(s.generation),
	}
	if s.parentID != "" {
		out.ParentID = ptr(s.parentID)
	}
	if s.isService() {
		out.LastHeartbeatAt = ptr(wire.CoordinatorTime(s.lastHeartbeatAt))
		out.HeartbeatDeadlineAt = ptr(wire.CoordinatorTime(s.deadline))
	} else {
		out.TTLSeconds = ptr(int(s.ttl / time.Second))
	}
	if edgeID != "" {
		out.DelegationEdgeID = ptr(edgeID)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// timeOrNil formats t, or null when zero.
func timeOrNil(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	return ptr(wire.CoordinatorTime(t))
}

// retireSession is DELETE /zones/{zone}/agents/{id} (PROTOCOL §4.4).
func (w *world) retireSession(c *call) {
	reason := "requested"
	if q := c.r.URL.Query(); q.Has("reason") {
		reason = q.Get("reason")
		if n := jsLength(reason); n < 1 || n > 256 {
			c.fail(http.StatusBadRequest, "invalid_query")
			return
		}
	}
	var gen float64
	hasGen := false
	if c.hasBody {
		obj, isObj := c.body.(map[string]any)
		if !isObj {
			c.fail(http.StatusBadRequest, "invalid_body")
			return
		}
		if v, present := obj["lease_generation"]; present {
			f, issue := checkInt(v, 1, 0)
			if issue != "" {
				c.fail(http.StatusBadRequest, "invalid_body")
				return
			}
			gen, hasGen = f, true
		}
	}
	s := w.sessions[c.r.PathValue("id")]
	if s == nil {
		c.fail(http.StatusNotFound, "session_not_found")
		return
	}
	if !c.owns(s.app) {
		c.fail(http.StatusForbidden, "application_ownership_required")
		return
	}
	if s.isService() && !c.p.admin() {
		if !hasGen {
			c.fail(http.StatusBadRequest, "lease_generation_required")
			return
		}
		if gen != float64(s.generation) {
			c.fail(http.StatusConflict, "session_lease_fenced")
			return
		}
	}
	if !s.nonTerminal() {
		c.fail(http.StatusNotFound, "session_not_found")
		return
	}
	w.endSubtree(s.id, wire.StatusTerminated, reason)
	c.rw.WriteHeader(http.StatusNoContent)
}

// suspendRoute is PATCH /zones/{zone}/agents/{id}/suspend.
func (w *world) suspendRoute(c *call) {
	s := w.sessions[c.r.PathValue("id")]
	if s != nil && !c.owns(s.app) {
		c.fail(http.StatusForbidden, "application_ownership_required")
		return
	}
	if s == nil || s.status != wire.StatusActive {
		c.fail(http.StatusConflict, "session_not_found_or_not_active")
		return
	}
	writeJSON(c.rw, http.StatusOK, map[string]int{"suspended": w.suspendSubtree(s.id)})
}

// resumeRoute is PATCH /zones/{zone}/agents/{id}/resume.
func (w *world) resumeRoute(c *call) {
	s := w.sessions[c.r.PathValue("id")]
	if s != nil && !c.owns(s.app) {
		c.fail(http.StatusForbidden, "application_ownership_required")
		return
	}
	if s == nil || s.status != wire.StatusSuspended {
		c.fail(http.StatusConflict, "session_not_found_or_not_suspended")
		return
	}
	writeJSON(c.rw, http.StatusOK, map[string]int{"resumed": w.resumeSubtree(s.id)})
}
