package caracaltest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewWorldDefaults(t *testing.T) {
	w, err := newWorld(worldConfig{
		Zone:      "zone-test",
		Apps:      []App{{ID: "app-test", Secret: "s"}},
		Resources: []Resource{{Identifier: "resource://tickets", Scopes: []string{"tickets:read"}}},
	})
	require.NoError(t, err)
	assert.Equal(t, 120*time.Second, w.lease)
	assert.Equal(t, Limits{SessionsPerZone: 50, SessionsPerApp: 200, ChildrenPerParent: 10, MaxDepth: 10,
		ReceiptsPerScope: 10000, MintPerMinute: 1000, AuthFailures: 60}, w.limits)
	require.Len(t, w.keys, 1)
	assert.NotEmpty(t, w.keys[0].kid)
	assert.Equal(t, "P-256", w.keys[0].private.Curve.Params().Name)
	require.NotNil(t, w.resources["resource://tickets"])
	assert.Same(t, w.resources["resource://tickets"], w.resByID["res-tickets"])
	assert.Same(t, w.resources["resource://tickets"], w.resolveResource("res-tickets"))
}

func TestNewWorldRejects(t *testing.T) {
	for name, cfg := range map[string]worldConfig{
		"bad zone":      {Zone: "zone/x"},
		"dup app":       {Zone: "z", Apps: []App{{ID: "a"}, {ID: "a"}}},
		"bad app":       {Zone: "z", Apps: []App{{ID: ""}}},
		"no identifier": {Zone: "z", Resources: []Resource{{}}},
		"dup resource":  {Zone: "z", Resources: []Resource{{Identifier: "r://a"}, {Identifier: "r://a"}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := newWorld(cfg)
			assert.Error(t, err)
		})
	}
}

func TestResourceSlug(t *testing.T) {
	assert.Equal(t, "res-tickets", resourceSlug("resource://tickets"))
	assert.Equal(t, "res-api-example-com-v1", resourceSlug("https://API.example.com/v1/"))
}
