package caracal_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// closeWorld is what a shutdown-order case works with: an in-memory stack,
// a client of it, and a reader session whose requests can be governed.
type closeWorld struct {
	st     *caracaltest.Stack
	c      *caracal.Client
	reader *caracal.Session
}

func newCloseWorld(t *testing.T) *closeWorld {
	t.Helper()
	st := caracaltest.Start(t, caracaltest.InMemory())
	c, err := st.NewClient()
	require.NoError(t, err)
	root, err := c.Spawn(t.Context())
	require.NoError(t, err)
	reader, err := c.Spawn(root.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{MaxHops: 3}, time.Hour)))
	require.NoError(t, err)
	return &closeWorld{st: st, c: c, reader: reader}
}

// get sends a governed GET for ticket 1 with hc under ctx.
func (w *closeWorld) get(ctx context.Context, hc *http.Client) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.st.UpstreamURL("resource://tickets")+"/tickets/1", nil)
	if err != nil {
		return nil, err
	}
	return hc.Do(req)
}

// within runs f and fails the test when it takes longer than d of the
// bubble's time.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	begin := time.Now()
	f()
	assert.LessOrEqual(t, time.Since(begin), d, "%s returns within %v", what, d)
}

// streamingUpstream makes the tickets upstream stream 8 KiB a second until
// its request ends; the channel closes once the first chunk is out.
func streamingUpstream(t *testing.T, w *closeWorld) <-chan struct{} {
	sent := make(chan struct{})
	var once sync.Once
	require.NoError(t, w.st.SetUpstream("resource://tickets", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.WriteHeader(http.StatusOK)
		chunk := make([]byte, 8<<10)
		for {
			if _, err := rw.Write(chunk); err != nil {
				return
			}
			rw.(http.Flusher).Flush()
			once.Do(func() { close(sent) })
			select {
			case <-r.Context().Done():
				return
			case <-time.After(time.Second):
			}
		}
	})))
	return sent
}

// closeDuringHeartbeat starts a service, holds a manual heartbeat of it at
// the Coordinator, closes with closeFn, and checks that the Close returns at
// once and ends the heartbeat with ErrSessionClosed.
func closeDuringHeartbeat(t *testing.T, w *closeWorld, what string, closeFn func(*caracal.Service) error) {
	svc, err := w.c.SpawnService(t.Context())
	require.NoError(t, err)
	w.st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Delay: time.Hour})
	beat := make(chan error, 1)
	go func() {
		_, err := svc.Heartbeat(context.Background())
		beat <- err
	}()
	synctest.Wait()
	within(t, 0, what, func() { require.NoError(t, closeFn(svc)) })
	synctest.Wait()
	select {
	case err := <-beat:
		assert.ErrorIs(t, err, caracal.ErrSessionClosed)
	default:
		t.Error("the heartbeat runs on after Close")
	}
}

// renewalHeld starts a service that renews every second and returns it once
// its first renewal is waiting in the Coordinator, held there for an hour.
func renewalHeld(t *testing.T, w *closeWorld) *caracal.Service {
	svc, err := w.c.SpawnService(t.Context(), caracal.HeartbeatInterval(time.Second))
	require.NoError(t, err)
	w.st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Delay: time.Hour})
	time.Sleep(time.Second) // fake time: the renewal is due
	synctest.Wait()
	return svc
}
