package caracal_test

import (
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A renewal answered with a deadline no later than the renewal itself
// grants no lease: the handle must not keep the length it knew before and
// hold on for another whole lease the Coordinator never gave.
func TestServiceRenewalWithoutLeaseEndsTheHandle(t *testing.T) {
	for _, n := range []time.Duration{0, -5 * time.Second} {
		t.Run(n.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := caracaltest.Start(t, caracaltest.InMemory())
				c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: shorterLease(st.Transport(), n)}))
				require.NoError(t, err)
				t.Cleanup(func() { _ = c.Close(t.Context()) })

				lost := make(chan error, 1)
				svc, err := c.SpawnService(t.Context(), caracal.OnLeaseLost(func(err error) { lost <- err }))
				require.NoError(t, err)
				time.Sleep(10 * time.Second)
				l, err := svc.Heartbeat(t.Context())
				assert.ErrorIs(t, err, caracal.ErrLeaseExpired)
				assert.False(t, l.Deadline.After(time.Now()), "deadline %v lies past the Coordinator's", l.Deadline)
				assert.False(t, svc.Deadline().After(time.Now()))
				assert.ErrorIs(t, svc.Err(), caracal.ErrLeaseExpired)
				synctest.Wait()
				select {
				case err := <-lost:
					assert.ErrorIs(t, err, caracal.ErrLeaseExpired)
				default:
					t.Error("OnLeaseLost was not called")
				}
				require.NoError(t, svc.Close(t.Context()))

				// In the background: lost at the first renewal, not a
				// whole old lease later.
				svc, err = c.SpawnService(t.Context(), caracal.HeartbeatAuto())
				require.NoError(t, err)
				time.Sleep(50 * time.Second)
				synctest.Wait()
				assert.ErrorIs(t, svc.Err(), caracal.ErrLeaseExpired)
				assert.Equal(t, 1, st.Count(caracaltest.RouteHeartbeat)-1)
				require.NoError(t, svc.Close(t.Context()))
			})
		})
	}
}
