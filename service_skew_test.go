package caracal_test

import (
	"context"
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

// An attach answer carries the Coordinator's deadline on its own clock and
// no lease length. When the clocks disagree by minutes, the handle must
// still hold a deadline no later than the Coordinator's and keep the
// session renewed, as a spawned service does.
func TestServiceAttachUnderClockSkew(t *testing.T) {
	for _, off := range []time.Duration{5 * time.Minute, -3 * time.Minute} {
		t.Run(off.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				clk := &skewClock{}
				clk.off.Store(int64(off))
				st, c := serviceStack(t, caracaltest.WithClock(clk))
				svc, err := c.SpawnService(t.Context())
				require.NoError(t, err)

				start := time.Now()
				taken, err := c.AttachService(t.Context(), svc.ID(), caracal.HeartbeatAuto())
				require.NoError(t, err)
				require.NoError(t, taken.Err(), "the lease was just acquired")
				assert.False(t, taken.Deadline().After(start.Add(120*time.Second)), "deadline %v after the Coordinator's", taken.Deadline().Sub(start))
				assert.Greater(t, taken.Deadline().Sub(start), 110*time.Second)

				time.Sleep(10 * time.Minute)
				synctest.Wait()
				require.NoError(t, taken.Err())
				info, _ := st.SessionInfo(svc.ID())
				assert.Equal(t, "active", info.Status)
				require.NoError(t, taken.Close(t.Context()))
				require.NoError(t, svc.Close(t.Context()))
			})
		})
	}
}

// Clocks that disagree by less than the Date header's one-second grain are
// not noticed by comparing with it: the attached deadline must still be no
// later than the Coordinator's, whichever clock is ahead.
func TestServiceAttachUnderSubSecondSkew(t *testing.T) {
	for _, off := range []time.Duration{500 * time.Millisecond, 900 * time.Millisecond, -500 * time.Millisecond} {
		t.Run(off.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				clk := &skewClock{}
				clk.off.Store(int64(off))
				_, c := serviceStack(t, caracaltest.WithClock(clk))
				svc, err := c.SpawnService(t.Context())
				require.NoError(t, err)
				time.Sleep(300 * time.Millisecond) // the Coordinator's clock is mid-second

				start := time.Now()
				taken, err := c.AttachService(t.Context(), svc.ID())
				require.NoError(t, err)
				assert.False(t, taken.Deadline().After(start.Add(120*time.Second)), "deadline %v after the Coordinator's", taken.Deadline().Sub(start))
				assert.GreaterOrEqual(t, taken.Deadline().Sub(start), 118*time.Second)
				require.NoError(t, taken.Close(t.Context()))
			})
		})
	}
}

// An attach answer without a Date header (a proxy in front of the
// Coordinator may drop it) is measured on the wall clock: the handle holds
// the Coordinator's deadline, not none.
func TestServiceAttachWithoutDateHeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		base := st.HTTPClient().Transport
		hc := &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := base.RoundTrip(r)
			if err == nil && strings.HasSuffix(r.URL.Path, "/lease") {
				resp.Header.Del("Date")
			}
			return resp, err
		})}
		c, err := st.NewClient(caracal.WithHTTPClient(hc))
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		svc, err := c.SpawnService(t.Context())
		require.NoError(t, err)

		start := time.Now()
		taken, err := c.AttachService(t.Context(), svc.ID())
		require.NoError(t, err)
		synctest.Wait()
		require.NoError(t, taken.Err())
		assert.False(t, taken.Deadline().After(start.Add(120*time.Second)), "deadline %v after the Coordinator's", taken.Deadline().Sub(start))
		assert.GreaterOrEqual(t, taken.Deadline().Sub(start), 119*time.Second)
		require.NoError(t, taken.Close(t.Context()))
	})
}
