package caracal_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A client that spawns and closes sessions for a long time holds nothing
// for them once they are closed: the handles, and the delegations they
// received, are forgotten.
func TestClientForgetsClosedSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient()
		require.NoError(t, err)
		ctx := t.Context()
		narrow := caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{MaxHops: 3}, time.Hour)
		sub := caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{MaxHops: 2}, time.Minute)
		for range 1000 {
			root, err := c.Spawn(ctx)
			require.NoError(t, err)
			giver, err := c.Spawn(root.Context(), caracal.WithGrant(narrow))
			require.NoError(t, err)
			peer, err := c.Spawn(ctx, caracal.WithoutParent())
			require.NoError(t, err)
			d, err := c.Delegate(giver.Context(), peer.ID(), sub)
			require.NoError(t, err)
			_, err = c.AcceptDelegation(peer.Context(), d.ID)
			require.NoError(t, err)
			svc, err := c.SpawnService(ctx)
			require.NoError(t, err)
			require.NoError(t, peer.Close(ctx))
			require.NoError(t, giver.Close(ctx))
			require.NoError(t, svc.Close(ctx))
			require.NoError(t, root.Close(ctx))
		}
		open, received, unretired := caracal.TrackedSizes(c)
		assert.Zero(t, open)
		assert.Zero(t, received)
		assert.Zero(t, unretired)
		assert.Zero(t, caracal.IndexedSessions(c))
		assert.Zero(t, caracal.IndexedServices(c))
		require.NoError(t, c.Close(context.Background()))
	})
}

// Closing a parent session or service ends its subtree on the Coordinator:
// a client that closes only the parent does not keep the children's handles.
func TestClientForgetsChildrenOfClosedParent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient()
		require.NoError(t, err)
		ctx := t.Context()
		for range 100 {
			root, err := c.Spawn(ctx)
			require.NoError(t, err)
			child, err := c.Spawn(root.Context())
			require.NoError(t, err)
			_, err = c.Spawn(child.Context())
			require.NoError(t, err)
			require.NoError(t, root.Close(ctx))
			svc, err := c.SpawnService(ctx)
			require.NoError(t, err)
			_, err = c.Spawn(svc.Context())
			require.NoError(t, err)
			require.NoError(t, svc.Close(ctx))
		}
		synctest.Wait()
		open, _, _ := caracal.TrackedSizes(c)
		assert.Zero(t, open)
		assert.Zero(t, caracal.IndexedSessions(c))
		assert.Zero(t, caracal.IndexedServices(c))
		require.NoError(t, c.Close(context.Background()))
	})
}

// A client that takes leases over (replayed starts, attaches, failed
// attaches) keeps nothing for those acquires once they are done.
func TestClientForgetsFinishedLeaseAcquires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient()
		require.NoError(t, err)
		ctx := t.Context()
		for i := range 20 {
			key := fmt.Sprintf("svc-%d", i)
			svc, err := c.SpawnService(ctx, caracal.WithIdempotencyKey(key))
			require.NoError(t, err)
			again, err := c.SpawnService(ctx, caracal.WithIdempotencyKey(key))
			require.NoError(t, err)
			taken, err := c.AttachService(ctx, svc.ID())
			require.NoError(t, err)
			_, err = c.AttachService(ctx, "00000000-0000-4000-8000-000000000000")
			require.Error(t, err)
			for _, s := range []*caracal.Service{svc, again, taken} {
				require.NoError(t, s.Close(ctx))
			}
		}
		assert.Zero(t, caracal.AcquiringServices(c))
		assert.Zero(t, caracal.IndexedServices(c))
		require.NoError(t, c.Close(context.Background()))
	})
}
