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

// A client that takes over a service it holds itself knows its old handle is
// fenced the moment the lease is acquired: the handle ends at once, as
// fenced, instead of looking live until its next heartbeat (or, renewed by
// hand, until its local deadline, reported as an expiry).
func TestServiceTakenOverInProcessEndsTheOldHandle(t *testing.T) {
	takeovers := map[string]func(c *caracal.Client, ctx context.Context, old *caracal.Service) (*caracal.Service, error){
		"attach": func(c *caracal.Client, ctx context.Context, old *caracal.Service) (*caracal.Service, error) {
			return c.AttachService(ctx, old.ID(), caracal.HeartbeatAuto())
		},
		"replayed start": func(c *caracal.Client, ctx context.Context, _ *caracal.Service) (*caracal.Service, error) {
			return c.SpawnService(ctx, caracal.WithIdempotencyKey("worker-1"), caracal.HeartbeatAuto())
		},
	}
	for name, takeover := range takeovers {
		for _, renew := range []caracal.SpawnOption{caracal.HeartbeatInterval(10 * time.Second), nil} {
			synctest.Test(t, func(t *testing.T) {
				st, c := serviceStack(t)
				lost := make(chan error, 2)
				old, err := c.SpawnService(t.Context(), caracal.WithIdempotencyKey("worker-1"), renew,
					caracal.OnLeaseLost(func(err error) { lost <- err }))
				require.NoError(t, err)

				taken, err := takeover(c, t.Context(), old)
				require.NoError(t, err, name)
				assert.Equal(t, old.ID(), taken.ID())
				assert.Equal(t, int64(2), taken.Generation())
				synctest.Wait()
				select {
				case <-old.Done():
				default:
					t.Fatalf("%s: the old handle is still live after the takeover", name)
				}
				err = old.Err()
				assert.ErrorIs(t, err, caracal.ErrLeaseFenced, name)
				assert.ErrorIs(t, err, caracal.ErrLeaseLost, name)
				assert.Contains(t, err.Error(), old.ID())
				assert.Equal(t, err, context.Cause(old.Context()))
				assert.Equal(t, err, <-lost)
				_, err = old.Heartbeat(t.Context())
				assert.ErrorIs(t, err, caracal.ErrLeaseFenced)
				assert.Zero(t, st.Count(caracaltest.RouteHeartbeat), "%s: nothing is sent with the fenced generation", name)
				require.NoError(t, taken.Err())

				time.Sleep(5 * time.Minute)
				synctest.Wait()
				assert.Empty(t, lost, "OnLeaseLost runs once")
				require.NoError(t, taken.Err(), "the new handle keeps the session")
				hbs := requestsTo(st, caracaltest.RouteHeartbeat)
				require.NotEmpty(t, hbs, "%s: the new handle renews", name)
				for _, hb := range hbs {
					assert.Contains(t, string(hb.Body), `"lease_generation":2`)
				}

				// The old handle retires nothing; the new one and the
				// client close as usual.
				require.NoError(t, old.Close(t.Context()))
				assert.Zero(t, st.Count(caracaltest.RouteRetire))
				require.NoError(t, c.Close(t.Context()))
				retires := requestsTo(st, caracaltest.RouteRetire)
				require.Len(t, retires, 1)
				assert.JSONEq(t, `{"lease_generation":2}`, string(retires[0].Body))
				info, _ := st.SessionInfo(taken.ID())
				assert.Equal(t, "terminated", info.Status)
			})
		}
	}
}
