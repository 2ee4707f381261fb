package caracal_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A replayed narrowed spawn looks for its edge among the session's inbound
// edges: an edge listed there that targets another session (here a sibling
// narrowed the same way) is not the session's, and is refused as an invalid
// answer instead of becoming the replayed session's delegation.
func TestReplayedSpawnRefusesAListedEdgeOfAnotherSession(t *testing.T) {
	st := caracaltest.Start(t)
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	var other *caracal.Session
	hc := &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(r)
		if err != nil || r.Method != http.MethodGet || other == nil || strings.Count(r.URL.Path[strings.Index(r.URL.Path, "/inbound/")+1:], "/") != 1 {
			return resp, err
		}
		var list map[string][]map[string]any
		err = json.NewDecoder(resp.Body).Decode(&list)
		_ = resp.Body.Close()
		if err != nil {
			return nil, err
		}
		for _, e := range list["items"] {
			e["id"], e["delegation_edge_id"] = other.Agent().DelegationID(), other.Agent().DelegationID()
			e["target_session_id"] = other.ID()
		}
		return jsonAnswer(mustJSON(t, list)), nil
	})}
	c, err := st.NewClient(caracal.WithHTTPClient(hc))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(t.Context()) })
	root, err := c.Spawn(t.Context())
	require.NoError(t, err)
	grant := caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Minute))
	_, err = c.Spawn(root.Context(), caracal.WithIdempotencyKey("job-9"), grant)
	require.NoError(t, err)
	other, err = c.Spawn(root.Context(), grant)
	require.NoError(t, err)

	again, err := c.Spawn(root.Context(), caracal.WithIdempotencyKey("job-9"), grant)
	if err == nil {
		t.Errorf("the replayed spawn bound delegation %s of session %s", again.Agent().DelegationID(), other.ID())
	}
	require.ErrorIs(t, err, caracal.ErrUnavailable)
}
