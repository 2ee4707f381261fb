package caracaltest

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNarrowingKeepsParentResource(t *testing.T) {
	// Under a parent edge scoped by resource_id, a child edge must resolve
	// only to that resource, even to another resource declaring the same
	// scopes.
	e := newCoordEnv(t, withResources(
		Resource{Identifier: "resource://tickets", ID: "res-tickets", Scopes: []string{"tickets:read"}},
		Resource{Identifier: "resource://mirror", Scopes: []string{"tickets:read"}},
	))
	long := map[string]any{"ttl_seconds": 7200}
	root := e.task("", long)
	a, b := e.task(root, long), e.task(root, long)
	e.edge(root, a, map[string]any{"constraints": map[string]any{"max_hops": 2}})

	child := map[string]any{"source_session_id": a, "target_session_id": b,
		"scopes": []string{"tickets:read"}, "ttl_seconds": 300}
	child["resource_id"] = "resource://mirror"
	got := e.delegate(child)
	require.Equal(t, http.StatusForbidden, got.status, got.raw)
	assert.Equal(t, "delegation_exceeds_parent_authority", got.code())

	child["resource_id"] = "resource://tickets"
	got = e.delegate(child)
	assert.Equal(t, http.StatusCreated, got.status, got.raw)
}
