package caracaltest

import (
	"slices"
	"time"

	"github.com/caracal-go/caracal/internal/wire"
)

// addRecord inserts an authority record (every successful STS exchange does).
func (w *world) addRecord(sessionType, subjectID, parentID string, expiresAt time.Time) *authorityRecord {
	r := &authorityRecord{
		id:          newID(),
		sessionType: sessionType,
		subjectID:   subjectID,
		parentID:    parentID,
		status:      wire.StatusActive,
		expiresAt:   expiresAt,
	}
	w.records[r.id] = r
	return r
}

// activeRecord returns the record if it is active and unexpired, else nil.
func (w *world) activeRecord(id string) *authorityRecord {
	r := w.records[id]
	if !r.active(w.now()) {
		return nil
	}
	return r
}

// revokeRecord marks the record and every descendant (by parent_id)
// revoked, as the STS does on a caracal.sessions.revoke message.
func (w *world) revokeRecord(id, reason string) {
	now := w.now()
	marked := map[string]bool{}
	queue := []string{id}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if marked[cur] {
			continue
		}
		marked[cur] = true
		if r := w.records[cur]; r != nil && r.status == wire.StatusActive {
			r.status = wire.StatusRevoked
			r.revokedAt = now
			r.revokedReason = reason
		}
		for _, r := range w.records {
			if r.parentID == cur && !marked[r.id] {
				queue = append(queue, r.id)
			}
		}
	}
}

// sessionMintable is the STS/Gateway activeSession check (PROTOCOL §5.1):
// status active, lease or TTL unexpired, and a user anchor still active.
func (w *world) sessionMintable(s *session) bool {
	now := w.now()
	if s == nil || !s.live(now) {
		return false
	}
	if rec := w.records[s.subjectRecordID]; rec != nil && rec.sessionType == "user" && !rec.active(now) {
		return false
	}
	return true
}

// addSession stores a new session; always add sessions through it so the
// capacity checks, which only look at open sessions, see it.
func (w *world) addSession(s *session) {
	w.sessions[s.id] = s
	if s.nonTerminal() {
		w.open[s.id] = s
	}
	if s.parentID != "" {
		w.children[s.parentID] = append(w.children[s.parentID], s.id)
	}
}

// subtree returns id and all its descendants (by parent_id), root first.
func (w *world) subtree(id string) []*session {
	var out []*session
	queue := []string{id}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if s := w.sessions[cur]; s != nil {
			out = append(out, s)
		}
		queue = append(queue, w.children[cur]...)
	}
	return out
}

// suspendSubtree suspends every active session of the subtree rooted at id.
// Edges stay active (PROTOCOL §5.5). It returns how many changed.
func (w *world) suspendSubtree(id string) int {
	n := 0
	for _, s := range w.subtree(id) {
		if s.status == wire.StatusActive {
			s.status = wire.StatusSuspended
			n++
		}
	}
	return n
}

// resumeSubtree resumes every suspended session of the subtree; services
// get a fresh deadline, generations are unchanged. It returns how many
// changed.
func (w *world) resumeSubtree(id string) int {
	now := w.now()
	n := 0
	for _, s := range w.subtree(id) {
		if s.status == wire.StatusSuspended {
			s.status = wire.StatusActive
			if s.isService() {
				s.deadline = now.Add(w.lease)
			}
			n++
		}
	}
	return n
}

// endSubtree ends the non-terminal sessions of the subtree rooted at id: the
// root gets rootStatus (terminated or expired) and reason, descendants
// terminated/parent_terminated; the parent's child count drops; every active
// edge touching an ended session is revoked, and so is a user authority
// record an ended session is anchored to. It returns the ended sessions.
func (w *world) endSubtree(id, rootStatus, reason string) []*session {
	now := w.now()
	var ended []*session
	for i, s := range w.subtree(id) {
		if !s.nonTerminal() {
			continue
		}
		if i == 0 {
			s.status, s.reason = rootStatus, reason
			if p := w.sessions[s.parentID]; p != nil && p.childCount > 0 {
				p.childCount--
			}
		} else {
			s.status, s.reason = wire.StatusTerminated, "parent_terminated"
		}
		s.terminatedAt = now
		delete(w.open, s.id)
		ended = append(ended, s)
	}
	for _, s := range ended {
		w.revokeSessionEdges(s.id)
		// The revocation events skip application-type records, so only a
		// user anchor is revoked here.
		if rec := w.records[s.subjectRecordID]; rec != nil && rec.sessionType != "application" {
			w.revokeRecord(rec.id, s.reason)
		}
	}
	return ended
}

// revokeSessionEdges revokes every active edge whose source or target is
// the session. It returns how many it revoked.
func (w *world) revokeSessionEdges(id string) int {
	n := 0
	for _, list := range [][]string{w.outbound[id], w.inbound[id]} {
		for _, eid := range list {
			if w.revokeEdge(w.edges[eid]) {
				n++
			}
		}
	}
	return n
}

// revokeEdge revokes one active edge and bumps the epoch.
func (w *world) revokeEdge(e *edge) bool {
	if e == nil || e.status != wire.StatusActive {
		return false
	}
	e.status = wire.StatusRevoked
	e.revokedAt = w.now()
	e.version++
	w.bumpEpoch()
	return true
}

// addEdge stores a new edge and bumps the epoch.
func (w *world) addEdge(e *edge) {
	w.edges[e.id] = e
	w.inbound[e.target] = append(w.inbound[e.target], e.id)
	w.outbound[e.source] = append(w.outbound[e.source], e.id)
	w.bumpEpoch()
}

// liveInbound returns the session's live inbound edges, oldest first.
func (w *world) liveInbound(sessionID string) []*edge {
	now := w.now()
	var out []*edge
	for _, id := range w.inbound[sessionID] {
		if e := w.edges[id]; e.live(now) {
			out = append(out, e)
		}
	}
	return out
}

// edgePath walks parent_edge_id links from the presented edge the way the
// STS does at mint (PROTOCOL §6.6): at most max_hops(presented) edges, each
// live, and the walk must reach an edge without a parent. It returns the
// path root-most first, or false ("delegation path invalid").
func (w *world) edgePath(edgeID string) ([]*edge, bool) {
	now := w.now()
	first := w.edges[edgeID]
	if !first.live(now) {
		return nil, false
	}
	limit := first.maxHops()
	var path []*edge
	for cur := first; ; {
		if !cur.live(now) || len(path) == limit {
			return nil, false
		}
		path = append(path, cur)
		if cur.parentEdge == "" {
			break
		}
		cur = w.edges[cur.parentEdge]
		if cur == nil {
			return nil, false
		}
	}
	slices.Reverse(path)
	return path, true
}
