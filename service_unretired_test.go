package caracal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A replayed service whose lease cannot be taken over is retired; when that
// retire fails too, Client.Close reports the session left running.
func TestServiceReplayWhoseRetireFailsIsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		lost := &lostAnswer{base: st.Transport()}
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: lost}))
		require.NoError(t, err)
		st.Inject(caracaltest.RouteLease, caracaltest.Fault{Status: http.StatusServiceUnavailable, Times: 1})
		st.Inject(caracaltest.RouteRetire, caracaltest.Fault{Status: http.StatusServiceUnavailable, Times: 1})
		_, err = c.SpawnService(t.Context())
		require.Error(t, err)
		require.NotEmpty(t, lost.lost)
		require.Equal(t, 1, st.Count(caracaltest.RouteRetire), "the retire was sent")
		requireReportedRunning(t, st, c, lost.lost)
	})
}

// answeredThenCancelled hands back the answer to the first session start
// whole, and cancels the caller as it does: the start succeeded, and the
// caller gave up before the handle was handed out.
type answeredThenCancelled struct {
	base   http.RoundTripper
	cancel context.CancelFunc

	mu sync.Mutex
	id string
}

func (a *answeredThenCancelled) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := a.base.RoundTrip(req)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil || a.id != "" || req.Method != http.MethodPost || req.URL.Path != "/zones/zone-test/agents" {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	a.id = startedID(&http.Response{Body: io.NopCloser(bytes.NewReader(body))})
	resp.Body = io.NopCloser(bytes.NewReader(body))
	a.cancel()
	return resp, nil
}

// A service started for a caller that gave up before it was handed out is
// retired; when that retire fails, the error says so and Client.Close
// reports the session left running.
func TestServiceGivenUpWhoseRetireFailsIsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		rt := &answeredThenCancelled{base: st.Transport(), cancel: cancel}
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: rt}))
		require.NoError(t, err)
		st.Inject(caracaltest.RouteRetire, caracaltest.Fault{Status: http.StatusServiceUnavailable, Times: 1})
		_, err = c.SpawnService(ctx)
		require.ErrorIs(t, err, context.Canceled)
		require.NotEmpty(t, rt.id)
		assert.ErrorIs(t, err, caracal.ErrUnavailable, "the failed retire is named")
		require.Equal(t, 1, st.Count(caracaltest.RouteRetire), "the retire was sent")
		requireReportedRunning(t, st, c, rt.id)
	})
}

// noLeaseStart drops the lease deadline from the answers to session starts
// (or, with attach, to lease acquires), or sends another value in its place.
type noLeaseStart struct {
	base     http.RoundTripper
	deadline any // the heartbeat_deadline_at sent instead; nil drops it
	attach   bool
}

func (n noLeaseStart) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := n.base.RoundTrip(req)
	target := req.URL.Path == "/zones/zone-test/agents"
	if n.attach {
		target = strings.HasSuffix(req.URL.Path, "/lease")
	}
	if err != nil || req.Method != http.MethodPost || !target {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	delete(m, "heartbeat_deadline_at")
	if n.deadline != nil {
		m["heartbeat_deadline_at"] = n.deadline
	}
	body, _ = json.Marshal(m)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// A service start answered without a lease is retired; when that retire
// fails, Client.Close reports the session left running.
func TestServiceStartWithoutLeaseWhoseRetireFailsIsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: noLeaseStart{base: st.Transport()}}))
		require.NoError(t, err)
		st.Inject(caracaltest.RouteRetire, caracaltest.Fault{Status: http.StatusServiceUnavailable, Times: 1})
		_, err = c.SpawnService(t.Context())
		require.ErrorContains(t, err, "has no lease")
		requireReportedRunning(t, st, c, retiredID(t, st))
	})
}

// The deadline such an answer carries is quoted in the error, on one line
// and bounded, whatever its size.
func TestServiceStartWithUnreadableDeadlineQuotesItBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		odd := strings.Repeat("soon\n", 2000)
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: noLeaseStart{base: st.Transport(), deadline: odd}}))
		require.NoError(t, err)
		_, err = c.SpawnService(t.Context())
		require.ErrorContains(t, err, "has no lease")
		assert.NotContains(t, err.Error(), "\n")
		assert.Less(t, len(err.Error()), 400)
		require.NoError(t, c.Close(t.Context()))

		svc, err := st.NewClient()
		require.NoError(t, err)
		s, err := svc.SpawnService(t.Context())
		require.NoError(t, err)
		c, err = st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: noLeaseStart{base: st.Transport(), deadline: odd, attach: true}}))
		require.NoError(t, err)
		_, err = c.AttachService(t.Context(), s.ID())
		require.ErrorContains(t, err, "has no lease")
		assert.NotContains(t, err.Error(), "\n")
		assert.Less(t, len(err.Error()), 400)
		require.NoError(t, c.Close(t.Context()))
		require.NoError(t, svc.Close(t.Context()))
	})
}
