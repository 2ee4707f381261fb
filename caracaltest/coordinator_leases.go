package caracaltest

import (
	"net/http"

	"github.com/caracal-go/caracal/internal/wire"
)

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
	if !req.hasGeneration {
		c.fail(http.StatusBadRequest, "lease_generation_required")
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
	writeJSON(c.rw, http.StatusOK, heartbeatAnswer{HeartbeatResponse: wire.HeartbeatResponse{
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
		Service: []byte("null"),
	}, ActiveInvocations: req.activeInvocations})
}

// heartbeatAnswer is the heartbeat's 200 body with active_invocations as
// the number the caller sent, whatever its size.
type heartbeatAnswer struct {
	wire.HeartbeatResponse
	ActiveInvocations float64 `json:"active_invocations"`
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
