package caracaltest

import (
	"fmt"
	"slices"

	"github.com/caracal-go/caracal/internal/wire"
)

// suspend suspends the session's subtree, as PATCH …/suspend does. It
// takes w.mu.
func (w *world) suspend(id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.sessions[id]
	if s == nil || s.status != wire.StatusActive {
		return fmt.Errorf("caracaltest: session %q not found or not active", id)
	}
	w.suspendSubtree(id)
	return nil
}

// resume resumes the session's subtree, as PATCH …/resume does. It takes
// w.mu.
func (w *world) resume(id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.sessions[id]
	if s == nil || s.status != wire.StatusSuspended {
		return fmt.Errorf("caracaltest: session %q not found or not suspended", id)
	}
	w.resumeSubtree(id)
	return nil
}

// terminate ends the session and its subtree as an operator would: edges
// touching them are revoked, authority records are left alone. It takes
// w.mu.
func (w *world) terminate(id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.sessions[id]
	if s == nil || !s.nonTerminal() {
		return fmt.Errorf("caracaltest: session %q not found or already ended", id)
	}
	w.endSubtree(id, wire.StatusTerminated, "operator")
	return nil
}

// sessionInfo returns a copy of the session's state. It takes w.mu.
func (w *world) sessionInfo(id string) (SessionInfo, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.sessions[id]
	if s == nil {
		return SessionInfo{}, false
	}
	info := SessionInfo{
		ID:              s.id,
		Application:     s.app,
		ParentID:        s.parentID,
		Lifecycle:       s.lifecycle,
		Status:          s.status,
		Labels:          slices.Clone(s.labels),
		Generation:      s.generation,
		Depth:           s.depth,
		SubjectRecordID: s.subjectRecordID,
	}
	if s.isService() {
		info.Deadline = s.deadline
	} else {
		info.ExpiresAt = s.taskExpiry()
	}
	return info, true
}

// edgeInfo returns a copy of the edge's state. It takes w.mu.
func (w *world) edgeInfo(id string) (EdgeInfo, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.edges[id]
	if e == nil {
		return EdgeInfo{}, false
	}
	info := EdgeInfo{
		ID:         e.id,
		Source:     e.source,
		Target:     e.target,
		ParentEdge: e.parentEdge,
		Scopes:     slices.Clone(e.scopes),
		Status:     e.status,
		ExpiresAt:  e.expiresAt,
		ResourceID: e.resourceID,
		MaxHops:    e.maxHops(),
	}
	if r := w.resByID[e.resourceID]; r != nil {
		info.Resource = r.identifier
	}
	return info, true
}

// sweep runs the Coordinator's service-lease and TTL sweepers once, and the
// retention cleaner's edge expiry (PROTOCOL §5.6); it also wakes the long
// polls of approval holds that expired and drops the STS's ended
// failed-authentication windows. It takes w.mu.
func (w *world) sweep() {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	// Lease sweeper: active services whose deadline passed, oldest first.
	var lapsed []*session
	for _, s := range w.sessions {
		if s.isService() && s.status == wire.StatusActive && s.deadline.Before(now) {
			lapsed = append(lapsed, s)
		}
	}
	slices.SortFunc(lapsed, func(a, b *session) int { return a.deadline.Compare(b.deadline) })
	for _, s := range lapsed {
		if s.status == wire.StatusActive { // an earlier suspension may have covered it
			w.suspendSubtree(s.id)
		}
	}
	// TTL sweeper: tasks past started_at + ttl expire; descendants end.
	var overdue []*session
	for _, s := range w.sessions {
		if !s.isService() && s.nonTerminal() && s.taskExpiry().Before(now) {
			overdue = append(overdue, s)
		}
	}
	slices.SortFunc(overdue, func(a, b *session) int { return a.taskExpiry().Compare(b.taskExpiry()) })
	for _, s := range overdue {
		if s.nonTerminal() {
			w.endSubtree(s.id, wire.StatusExpired, "ttl")
		}
	}
	w.wakeExpiredHolds(now)
	w.dropRetiredKeys(now)
	w.dropAuthWindows(now)
	// Retention cleaner, edge part: active edges past expires_at are marked
	// expired. Every validity check already compares expires_at, so this
	// only changes what listings and EdgeInfo show.
	for _, e := range w.edges {
		if e.status == wire.StatusActive && !e.expiresAt.After(now) {
			e.status = wire.StatusExpired
			w.bumpEpoch()
		}
	}
}
