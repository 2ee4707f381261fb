package caracaltest

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/caracal-go/caracal/internal/wire"
)

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
	w.writeSessionPage(c, items, limit)
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
	w.writeSessionPage(c, items, limit)
}

// writeSessionPage sorts sessions newest first (UUIDv7 ids break ties),
// applies the cursor (a session id) and writes one page.
func (w *world) writeSessionPage(c *call, items []*session, limit int) {
	slices.SortFunc(items, func(a, b *session) int {
		if d := b.startedAt.Compare(a.startedAt); d != 0 {
			return d
		}
		switch {
		case a.id > b.id:
			return -1
		case a.id < b.id:
			return 1
		}
		return 0
	})
	q := c.r.URL.Query()
	if q.Has("cursor") {
		cur := q.Get("cursor")
		i := slices.IndexFunc(items, func(s *session) bool { return s.id == cur })
		if i < 0 {
			c.fail(http.StatusBadRequest, "invalid_cursor")
			return
		}
		items = items[i+1:]
	}
	var next *string
	rows := make([]sessionRow, 0, min(limit, len(items)))
	for i, s := range items {
		if i == limit {
			next = ptr(rows[len(rows)-1].AgentSessionID)
			break
		}
		rows = append(rows, w.sessionRow(s))
	}
	writeJSON(c.rw, http.StatusOK, map[string]any{"items": rows, "next_cursor": next})
}
