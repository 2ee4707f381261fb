package caracaltest

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caracal-go/caracal/internal/wire"
)

// The Coordinator's read routes (PROTOCOL §4.9, §4.10): session and inbound
// delegation listings and lookups.

// Read-only listing routes of PROTOCOL §4.10.
const (
	routeListSessions = "GET /zones/{zone}/agents"
	routeListChildren = "GET /zones/{zone}/agents/{id}/children"
)

// listLimit reads the limit query parameter (1-500, default 100).
func listLimit(q url.Values) (int, bool) {
	if !q.Has("limit") {
		return 100, true
	}
	n, err := strconv.Atoi(q.Get("limit"))
	return n, err == nil && n >= 1 && n <= 500
}

// listSessions is GET /zones/{zone}/agents: every session of the zone,
// newest first, optionally filtered; reads have no ownership check.
func (w *world) listSessions(c *call) {
	q := c.r.URL.Query()
	limit, ok := listLimit(q)
	status, lifecycle := q.Get("status"), q.Get("lifecycle")
	if !ok ||
		(q.Has("status") && !slices.Contains([]string{wire.StatusActive, wire.StatusSuspended, wire.StatusTerminated, wire.StatusExpired}, status)) ||
		(q.Has("lifecycle") && lifecycle != wire.LifecycleTask && lifecycle != wire.LifecycleService) ||
		(q.Has("application_id") && q.Get("application_id") == "") ||
		(q.Has("label") && q.Get("label") == "") {
		c.fail(http.StatusBadRequest, "invalid_query")
		return
	}
	var items []*session
	for _, s := range w.sessions {
		if (status == "" || s.status == status) && (lifecycle == "" || s.lifecycle == lifecycle) &&
			(!q.Has("application_id") || s.app == q.Get("application_id")) &&
			(!q.Has("label") || slices.Contains(s.labels, q.Get("label"))) {
			items = append(items, s)
		}
	}
	writePage(c, items, limit, sessionKey, w.sessionRow)
}

// listChildren is GET /zones/{zone}/agents/{id}/children.
func (w *world) listChildren(c *call) {
	q := c.r.URL.Query()
	limit, ok := listLimit(q)
	if !ok {
		c.fail(http.StatusBadRequest, "invalid_query")
		return
	}
	id := c.r.PathValue("id")
	if w.sessions[id] == nil {
		c.fail(http.StatusNotFound, "session_not_found")
		return
	}
	var items []*session
	for _, cid := range w.children[id] {
		items = append(items, w.sessions[cid])
	}
	writePage(c, items, limit, sessionKey, w.sessionRow)
}

// writePage sorts items newest first (UUIDv7 ids break ties), applies the
// cursor (an item id) and writes one page of rows.
func writePage[T, R any](c *call, items []T, limit int, key func(T) (time.Time, string), row func(T) R) {
	slices.SortStableFunc(items, func(a, b T) int {
		at, aid := key(a)
		bt, bid := key(b)
		if d := bt.Compare(at); d != 0 {
			return d
		}
		return strings.Compare(bid, aid)
	})
	if q := c.r.URL.Query(); q.Has("cursor") {
		cur := q.Get("cursor")
		i := slices.IndexFunc(items, func(v T) bool { _, id := key(v); return id == cur })
		if i < 0 {
			c.fail(http.StatusBadRequest, "invalid_cursor")
			return
		}
		items = items[i+1:]
	}
	var next *string
	rows := make([]R, 0, min(limit, len(items)))
	for i, v := range items {
		if i == limit {
			_, id := key(items[i-1])
			next = ptr(id)
			break
		}
		rows = append(rows, row(v))
	}
	writeJSON(c.rw, http.StatusOK, map[string]any{"items": rows, "next_cursor": next})
}

// sessionKey orders sessions for writePage.
func sessionKey(s *session) (time.Time, string) { return s.startedAt, s.id }

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

// edgeRow is an edge as the inbound listing returns it.
type edgeRow struct {
	ID string `json:"id"`
	edgeFields
}

// inboundEdge is GET /zones/{zone}/delegations/inbound/{sid}/{id} (§4.9).
func (w *world) inboundEdge(c *call) {
	e := w.edges[c.r.PathValue("id")]
	if e == nil || e.target != c.r.PathValue("sid") || !e.live(w.now()) || e.receiver != c.p.clientID {
		c.fail(http.StatusNotFound, "delegation_not_found")
		return
	}
	writeJSON(c.rw, http.StatusOK, wire.InboundEdgeStatus{ID: e.id, Status: e.status})
}

// inboundList is GET /zones/{zone}/delegations/inbound/{sid} (§4.9).
func (w *world) inboundList(c *call) {
	limit, ok := listLimit(c.r.URL.Query())
	if !ok {
		c.fail(http.StatusBadRequest, "invalid_query")
		return
	}
	sid := c.r.PathValue("sid")
	s := w.sessions[sid]
	if s == nil || s.app != c.p.clientID {
		c.fail(http.StatusNotFound, "session_not_found")
		return
	}
	var items []*edge
	for _, id := range w.inbound[sid] {
		e := w.edges[id]
		if e.issuer == c.p.clientID || e.receiver == c.p.clientID {
			items = append(items, e)
		}
	}
	writePage(c, items, limit, func(e *edge) (time.Time, string) { return e.createdAt, e.id },
		func(e *edge) edgeRow { return edgeRow{ID: e.id, edgeFields: w.edgeFields(e)} })
}
