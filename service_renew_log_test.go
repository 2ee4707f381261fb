package caracal_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
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
		logged := &levelCounter{match: "lease renewal failed"}
		c, err := st.NewClient(caracal.WithLogger(slog.New(logged)))
		require.NoError(t, err)
		svc, err := c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)

		st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Status: http.StatusServiceUnavailable, Times: 3})
		time.Sleep(100 * time.Second) // three failures, then renewals again
		require.GreaterOrEqual(t, st.Count(caracaltest.RouteHeartbeat), 4)
		assert.Equal(t, map[slog.Level]int{slog.LevelWarn: 1, slog.LevelDebug: 2}, logged.counts())

		st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Status: http.StatusServiceUnavailable, Times: 2})
		time.Sleep(100 * time.Second)
		assert.Equal(t, map[slog.Level]int{slog.LevelWarn: 2, slog.LevelDebug: 3}, logged.counts(), "a new run of failures warns again")
		require.NoError(t, svc.Err(), "the lease held throughout")
		require.NoError(t, c.Close(t.Context()))
	})
}

// levelCounter is a slog.Handler that counts, by level, the records whose
// message contains match.
type levelCounter struct {
	match string
	mu    sync.Mutex
	n     map[slog.Level]int
}

func (h *levelCounter) Enabled(context.Context, slog.Level) bool { return true }

func (h *levelCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.match) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.n == nil {
			h.n = map[slog.Level]int{}
		}
		h.n[r.Level]++
	}
	return nil
}

func (h *levelCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *levelCounter) WithGroup(string) slog.Handler      { return h }

func (h *levelCounter) counts() map[slog.Level]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}
