package caracal_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A service is not a task: the client's default task TTL does not reach it,
// and a service whose lease is renewed outlives that TTL and the
// Coordinator's own default, while a task started beside it expires, until
// the service is closed.
func TestServiceOutlivesEveryTaskTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient(caracal.WithDefaultTTL(time.Minute))
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close(context.Background()) })

		task, err := c.Spawn(t.Context())
		require.NoError(t, err)
		svc, err := c.SpawnService(t.Context(), caracal.WithLabels("billing-worker"), caracal.HeartbeatAuto())
		require.NoError(t, err)
		starts := requestsTo(st, caracaltest.RouteStart)
		require.Len(t, starts, 2)
		assert.Contains(t, string(starts[0].Body), `"ttl_seconds":60`)
		assert.NotContains(t, string(starts[1].Body), "ttl_seconds")

		// Past the client's default TTL and the Coordinator's 3600 s.
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		info, ok := st.SessionInfo(task.ID())
		require.True(t, ok)
		assert.Equal(t, "expired", info.Status, "the TTL sweeper ran")
		require.NoError(t, svc.Err())
		info, ok = st.SessionInfo(svc.ID())
		require.True(t, ok)
		assert.Equal(t, "active", info.Status)

		require.NoError(t, svc.Close(t.Context()))
		info, _ = st.SessionInfo(svc.ID())
		assert.Equal(t, "terminated", info.Status)
	})
}
