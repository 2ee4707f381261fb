package caracal_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// heartbeatAgent is a RoundTripper that lets edit change the "agent" object
// of every successful heartbeat answer of base.
type heartbeatAgent struct {
	base http.RoundTripper
	edit func(agent map[string]any) error
}

func (h heartbeatAgent) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := h.base.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasSuffix(r.URL.Path, "/heartbeat") {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var body map[string]json.RawMessage
	var agent map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body["agent"], &agent); err != nil {
		return nil, err
	}
	if err := h.edit(agent); err != nil {
		return nil, err
	}
	if body["agent"], err = json.Marshal(agent); err != nil {
		return nil, err
	}
	if b, err = json.Marshal(body); err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// shorterLease makes every heartbeat answer report a lease of n: what a
// Coordinator restarted with a shorter SERVICE_AGENT_LEASE_SECONDS answers.
func shorterLease(base http.RoundTripper, n time.Duration) http.RoundTripper {
	return heartbeatAgent{base, func(agent map[string]any) error {
		last, err := time.Parse(time.RFC3339Nano, agent["last_heartbeat_at"].(string))
		if err != nil {
			return err
		}
		agent["heartbeat_deadline_at"] = last.Add(n).UTC().Format("2006-01-02T15:04:05.000Z")
		return nil
	}}
}

// A renewal answer reporting a shorter lease than the handle knew moves the
// local deadline back to the renewal plus that lease: the deadline never lies
// later than the Coordinator's, and the next renewal is due before it.
func TestServiceDeadlineFollowsShorterLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: shorterLease(st.Transport(), 30*time.Second)}))
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close(t.Context()) })

		start := time.Now()
		svc, err := c.SpawnService(t.Context())
		require.NoError(t, err)
		sameTime(t, start.Add(120*time.Second), svc.Deadline())

		time.Sleep(10 * time.Second)
		l, err := svc.Heartbeat(t.Context())
		require.NoError(t, err)
		sameTime(t, start.Add(40*time.Second), l.Deadline)
		sameTime(t, start.Add(40*time.Second), svc.Deadline())

		// A renewal answered after a later one does not move it back.
		st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Delay: 5 * time.Second, Times: 1})
		slow := make(chan error, 1)
		go func() {
			_, err := svc.Heartbeat(t.Context())
			slow <- err
		}()
		time.Sleep(time.Second)
		_, err = svc.Heartbeat(t.Context())
		require.NoError(t, err)
		sameTime(t, start.Add(41*time.Second), svc.Deadline())
		require.NoError(t, <-slow)
		sameTime(t, start.Add(41*time.Second), svc.Deadline())
		require.NoError(t, svc.Close(t.Context()))

		// In the background, at a fixed interval longer than the new lease.
		st.ResetRecord()
		start = time.Now()
		svc, err = c.SpawnService(t.Context(), caracal.HeartbeatInterval(60*time.Second))
		require.NoError(t, err)
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		require.NoError(t, svc.Err())
		hb := requestsTo(st, caracaltest.RouteHeartbeat)
		require.GreaterOrEqual(t, len(hb), 3)
		assert.Equal(t, 60*time.Second, hb[0].At.Sub(start))
		for i := 1; i < len(hb); i++ {
			assert.Equal(t, 20*time.Second, hb[i].At.Sub(hb[i-1].At), "heartbeat %d: due before two thirds of the 30 s lease", i)
		}
		require.NoError(t, svc.Close(t.Context()))
	})
}

// A heartbeat made by hand that learns of a shorter lease brings the
// background renewal forward too: the renewal it had scheduled for the old
// lease would come after the new deadline.
func TestServiceManualHeartbeatReschedulesBackgroundRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: shorterLease(st.Transport(), 30*time.Second)}))
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close(t.Context()) })

		svc, err := c.SpawnService(t.Context(), caracal.HeartbeatInterval(60*time.Second))
		require.NoError(t, err)
		time.Sleep(10 * time.Second)
		_, err = svc.Heartbeat(t.Context())
		require.NoError(t, err)

		time.Sleep(5 * time.Minute)
		synctest.Wait()
		require.NoError(t, svc.Err(), "the background renewal kept the shorter lease")
		require.NoError(t, svc.Close(t.Context()))
	})
}

// Two renewals made one after the other at the same reading of the clock
// (as under testing/synctest, where time stands still while the test runs):
// the answer to the later one sets the deadline, as it would a moment later.
func TestServiceDeadlineFollowsTheLaterRenewalAtTheSameInstant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		var n atomic.Int64
		n.Store(int64(30 * time.Second))
		answers := heartbeatAgent{st.Transport(), func(agent map[string]any) error {
			last, err := time.Parse(time.RFC3339Nano, agent["last_heartbeat_at"].(string))
			agent["heartbeat_deadline_at"] = last.Add(time.Duration(n.Load())).UTC().Format(time.RFC3339Nano)
			return err
		}}
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: answers}))
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close(t.Context()) })

		start := time.Now()
		svc, err := c.SpawnService(t.Context())
		require.NoError(t, err)
		_, err = svc.Heartbeat(t.Context())
		require.NoError(t, err)
		sameTime(t, start.Add(30*time.Second), svc.Deadline())

		n.Store(int64(10 * time.Second))
		l, err := svc.Heartbeat(t.Context())
		require.NoError(t, err)
		sameTime(t, start.Add(10*time.Second), l.Deadline)
		sameTime(t, start.Add(10*time.Second), svc.Deadline())
		require.NoError(t, svc.Close(t.Context()))
	})
}
