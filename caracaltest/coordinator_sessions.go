package caracaltest

import (
	"net/http"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

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
	key, ok := c.idemKey()
	if !ok {
		return
	}
	generated := c.r.Header.Get(wire.HeaderIdempotencyKind) == "generated"
	var dig string
	if key != "" {
		dig = digest(startDigest(c.p, req, subject))
		if w.idemOutcome(c, opSessionStart, req.applicationID, key, dig, w.sessionLiveForReplay) {
			return
		}
	}
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
		return
	}
	if app.dcr && appLive > 0 {
		c.fail(http.StatusConflict, "dcr_application_already_bound")
		return
	}
	if appLive >= w.limits.SessionsPerApp {
		c.fail(http.StatusTooManyRequests, "session_limit_exceeded")
		return
	}
	depth := 0
	var parent *session
	var mirrorOf *edge
	if req.parentID != "" {
		parent = w.sessions[req.parentID]
		if parent == nil || parent.status != wire.StatusActive {
			c.fail(http.StatusNotFound, "parent_not_found")
			return
		}
		if papp := w.apps[parent.app]; papp != nil && papp.dcr {
			c.fail(http.StatusConflict, "dcr_application_cannot_start_child")
			return
		}
		if parent.lifecycle == wire.LifecycleTask && isService {
			c.fail(http.StatusConflict, "task_session_cannot_start_service")
			return
		}
		if parent.app != req.applicationID && !c.p.may("coordinator.spawn_under:"+parent.app) {
			c.fail(http.StatusForbidden, "parent_ownership_required")
			return
		}
		if parent.childCount >= w.limits.ChildrenPerParent {
			c.fail(http.StatusTooManyRequests, "session_children_limit_exceeded")
			return
		}
		depth = parent.depth + 1
		if depth > w.limits.MaxDepth {
			c.fail(http.StatusTooManyRequests, "session_depth_limit_exceeded")
			return
		}
		if req.authority == wire.AuthorityInherit {
			var code string
			mirrorOf, code = w.resolveInherit(parent.id, req.applicationID, req.inheritEdgeID)
			if code != "" {
				c.fail(http.StatusConflict, code)
				return
			}
		}
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
		if n := utf8.RuneCountInString(reason); n < 1 || n > 256 {
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

// heartbeat is POST /zones/{zone}/agents/{id}/heartbeat (PROTOCOL §4.5).
func (w *world) heartbeat(c *call) {
	req, issues := parseHeartbeatRequest(c.body)
	if issues != nil {
		c.invalidBody(issues)
		return
	}
	s := w.sessions[c.r.PathValue("id")]
	if !w.leaseChecks(c, s, false) {
		return
	}
	if req.generation != float64(s.generation) {
		c.fail(http.StatusConflict, "session_lease_fenced")
		return
	}
	now := w.now()
	if s.status == wire.StatusActive && !s.deadline.After(now) {
		w.suspendSubtree(s.id)
		c.fail(http.StatusConflict, "session_lease_expired")
		return
	}
	if !w.bearerAnchors(c, s) {
		return
	}
	if req.serviceID != "" {
		// No service registrations exist in this stack.
		c.fail(http.StatusNotFound, "agent_service_not_found")
		return
	}
	s.lastActiveAt, s.lastHeartbeatAt = now, now
	s.deadline = now.Add(w.lease)
	writeJSON(c.rw, http.StatusOK, wire.HeartbeatResponse{
		Agent: wire.HeartbeatAgent{
			ID:                  s.id,
			ZoneID:              w.zone,
			ApplicationID:       s.app,
			Status:              s.status,
			LastActiveAt:        wire.CoordinatorTime(s.lastActiveAt),
			LastHeartbeatAt:     wire.CoordinatorTime(s.lastHeartbeatAt),
			HeartbeatDeadlineAt: wire.CoordinatorTime(s.deadline),
			LeaseGeneration:     wire.Int64(s.generation),
		},
		Service:           []byte("null"),
		ActiveInvocations: req.activeInvocations,
	})
}

// leaseChecks runs the checks heartbeat and lease acquire share, up to and
// including the user-anchor rule; forLease applies the acquire order
// (service before status, suspended refused).
func (w *world) leaseChecks(c *call, s *session, forLease bool) bool {
	if s == nil {
		c.fail(http.StatusNotFound, "session_not_found")
		return false
	}
	if !c.owns(s.app) {
		c.fail(http.StatusForbidden, "application_ownership_required")
		return false
	}
	if forLease {
		switch {
		case !s.isService():
			c.fail(http.StatusConflict, "session_not_service")
			return false
		case s.status == wire.StatusSuspended:
			c.fail(http.StatusConflict, "session_suspended")
			return false
		case s.status != wire.StatusActive:
			c.fail(http.StatusConflict, "session_not_live")
			return false
		}
	} else {
		if !s.nonTerminal() {
			c.fail(http.StatusConflict, "session_not_live")
			return false
		}
		if !s.isService() {
			c.fail(http.StatusConflict, "session_not_service")
			return false
		}
	}
	if rec := w.records[s.subjectRecordID]; rec != nil && rec.sessionType == "user" && !rec.active(w.now()) {
		w.endSubtree(s.id, wire.StatusTerminated, "subject_inactive")
		c.fail(http.StatusConflict, "session_subject_inactive")
		return false
	}
	return true
}

// bearerAnchors applies heartbeat rows 9-10: the bearer's sid must be an
// active application record of the session's application.
func (w *world) bearerAnchors(c *call, s *session) bool {
	if c.p.sid == "" {
		c.fail(http.StatusUnauthorized, "authority_record_required")
		return false
	}
	rec := w.activeRecord(c.p.sid)
	if rec == nil || rec.sessionType != "application" || rec.subjectID != s.app {
		c.fail(http.StatusUnauthorized, "identity_revoked")
		return false
	}
	return true
}

// acquireLease is POST /zones/{zone}/agents/{id}/lease (PROTOCOL §4.6).
func (w *world) acquireLease(c *call) {
	s := w.sessions[c.r.PathValue("id")]
	if !w.leaseChecks(c, s, true) {
		return
	}
	now := w.now()
	if !s.deadline.After(now) {
		w.suspendSubtree(s.id)
		c.fail(http.StatusConflict, "session_lease_expired")
		return
	}
	if !w.bearerAnchors(c, s) {
		return
	}
	s.generation++
	s.deadline = now.Add(w.lease)
	writeJSON(c.rw, http.StatusOK, wire.LeaseResponse{
		Status:              s.status,
		HeartbeatDeadlineAt: wire.CoordinatorTime(s.deadline),
		LeaseGeneration:     wire.Int64(s.generation),
	})
}

// sessionRow is the read-route row of GET /zones/{zone}/agents/{id}: the
// bigint lease_generation comes back as a JSON string (PROTOCOL §4.10).
type sessionRow struct {
	AgentSessionID           string   `json:"agent_session_id"`
	ZoneID                   string   `json:"zone_id"`
	ApplicationID            string   `json:"application_id"`
	ParentID                 *string  `json:"parent_id"`
	SubjectAuthorityRecordID string   `json:"subject_authority_record_id"`
	Lifecycle                string   `json:"lifecycle"`
	Labels                   []string `json:"labels"`
	Status                   string   `json:"status"`
	Depth                    int      `json:"depth"`
	TTLSeconds               *int     `json:"ttl_seconds"`
	Metadata                 rawJSON  `json:"metadata"`
	StartedAt                string   `json:"started_at"`
	TerminatedAt             *string  `json:"terminated_at"`
	TerminationReason        *string  `json:"termination_reason"`
	LastHeartbeatAt          *string  `json:"last_heartbeat_at"`
	HeartbeatDeadlineAt      *string  `json:"heartbeat_deadline_at"`
	LeaseGeneration          string   `json:"lease_generation"`
}

// rawJSON embeds pre-encoded JSON.
type rawJSON []byte

// MarshalJSON returns the bytes as they are.
func (r rawJSON) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("{}"), nil
	}
	return r, nil
}

// getSession is GET /zones/{zone}/agents/{id}; reads have no ownership check.
func (w *world) getSession(c *call) {
	s := w.sessions[c.r.PathValue("id")]
	if s == nil {
		c.fail(http.StatusNotFound, "session_not_found")
		return
	}
	writeJSON(c.rw, http.StatusOK, w.sessionRow(s))
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

// sessionRow is the read-route form of a session.
func (w *world) sessionRow(s *session) sessionRow {
	wv := w.sessionWire(s, "")
	row := sessionRow{
		AgentSessionID:           s.id,
		ZoneID:                   w.zone,
		ApplicationID:            s.app,
		ParentID:                 wv.ParentID,
		SubjectAuthorityRecordID: s.subjectRecordID,
		Lifecycle:                s.lifecycle,
		Labels:                   wv.Labels,
		Status:                   s.status,
		Depth:                    s.depth,
		TTLSeconds:               wv.TTLSeconds,
		Metadata:                 rawJSON(s.metadata),
		StartedAt:                wv.StartedAt,
		TerminatedAt:             timeOrNil(s.terminatedAt),
		LastHeartbeatAt:          timeOrNil(s.lastHeartbeatAt),
		LeaseGeneration:          strconv.FormatInt(s.generation, 10),
	}
	if s.isService() {
		row.HeartbeatDeadlineAt = timeOrNil(s.deadline)
	}
	if s.reason != "" {
		row.TerminationReason = ptr(s.reason)
	}
	return row
}
