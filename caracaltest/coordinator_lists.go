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
