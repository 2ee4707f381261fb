package caracal_test

import (
	"context"
	"fmt"
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
	"github.com/caracal-go/caracal/internal/wire"
)

// A heartbeat answer that does not renew this service's lease (an empty
// object, the answer for another session or another generation) is no
// renewal: the lease runs out on its local deadline as when the Coordinator
// cannot be reached.
func TestHeartbeatAnswerForNoLeaseIsNoRenewal(t *testing.T) {
	agent := func(id string, gen int, now time.Time) string {
		return fmt.Sprintf(`{"agent":{"id":%q,"status":"active","last_heartbeat_at":%q,"heartbeat_deadline_at":%q,"lease_generation":%d},"service":null,"active_invocations":0}`,
			id, wire.CoordinatorTime(now), wire.CoordinatorTime(now.Add(2*time.Minute)), gen)
	}
	for name, body := range map[string]func(id string, now time.Time) string{
		"empty":              func(string, time.Time) string { return `{}` },
		"another session":    func(_ string, now time.Time) string { return agent("other-session", 1, now) },
		"another generation": func(id string, now time.Time) string { return agent(id, 7, now) },
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := caracaltest.Start(t, caracaltest.InMemory())
				base := st.HTTPClient().Transport
				var answered atomic.Int32
				hc := &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
					if !strings.HasSuffix(r.URL.Path, "/heartbeat") {
						return base.RoundTrip(r)
					}
					answered.Add(1)
					return jsonAnswer(body(strings.Split(r.URL.Path, "/")[4], time.Now())), nil
				})}
				c, err := st.NewClient(caracal.WithHTTPClient(hc))
				require.NoError(t, err)
				t.Cleanup(func() { _ = c.Close(context.Background()) })

				svc, err := c.SpawnService(t.Context(), caracal.HeartbeatAuto())
				require.NoError(t, err)
				time.Sleep(2*time.Minute + time.Second)
				synctest.Wait()
				require.NotZero(t, answered.Load())
				assert.ErrorIs(t, svc.Err(), caracal.ErrLeaseExpired, "the lease was never renewed")
			})
		})
	}
}

// A heartbeat answer that carries no status renews the lease and leaves the
// status last reported as it was.
func TestHeartbeatAnswerWithoutStatusKeepsTheLastOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		base := st.HTTPClient().Transport
		hc := &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
			if !strings.HasSuffix(r.URL.Path, "/heartbeat") {
				return base.RoundTrip(r)
			}
			now := time.Now()
			return jsonAnswer(fmt.Sprintf(`{"agent":{"id":%q,"last_heartbeat_at":%q,"heartbeat_deadline_at":%q,"lease_generation":1},"service":null,"active_invocations":0}`,
				strings.Split(r.URL.Path, "/")[4], wire.CoordinatorTime(now), wire.CoordinatorTime(now.Add(2*time.Minute)))), nil
		})}
		c, err := st.NewClient(caracal.WithHTTPClient(hc))
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close(context.Background()) })

		svc, err := c.SpawnService(t.Context())
		require.NoError(t, err)
		require.Equal(t, "active", svc.Status())
		time.Sleep(time.Minute)
		l, err := svc.Heartbeat(t.Context())
		require.NoError(t, err)
		sameTime(t, time.Now().Add(2*time.Minute), l.Deadline)
		assert.Equal(t, "active", l.Status)
		assert.Equal(t, "active", svc.Status())
	})
}
