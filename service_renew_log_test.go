package caracal_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A failing background renewal is a warning once per run of failures, and
// its retries are logged at debug level: an outage of the Coordinator costs
// each service one warning (and one more if the lease is lost), not one per
// retry.
func TestServiceRenewalFailuresWarnOncePerRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		logged := &logRecorder{}
		c, err := st.NewClient(caracal.WithLogger(slog.New(logged)))
		renewalFailures := func() map[slog.Level]int {
			n := map[slog.Level]int{}
			for _, r := range logged.all() {
				if strings.Contains(r.Message, "lease renewal failed") {
					n[r.Level]++
				}
			}
			return n
		}
		require.NoError(t, err)
		svc, err := c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)

		st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Status: http.StatusServiceUnavailable, Times: 3})
		time.Sleep(100 * time.Second) // three failures, then renewals again
		require.GreaterOrEqual(t, st.Count(caracaltest.RouteHeartbeat), 4)
		assert.Equal(t, map[slog.Level]int{slog.LevelWarn: 1, slog.LevelDebug: 2}, renewalFailures())

		st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Status: http.StatusServiceUnavailable, Times: 2})
		time.Sleep(100 * time.Second)
		assert.Equal(t, map[slog.Level]int{slog.LevelWarn: 2, slog.LevelDebug: 3}, renewalFailures(), "a new run of failures warns again")
		require.NoError(t, svc.Err(), "the lease held throughout")
		require.NoError(t, c.Close(t.Context()))
	})
}
