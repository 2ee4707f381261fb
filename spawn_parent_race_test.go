package caracal_test

import (
	"context"
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

// hookStart runs hook once, after the Coordinator answered a session start
// and before the answer reaches the client.
type hookStart struct {
	base http.RoundTripper
	once sync.Once
	hook func()
}

func (h *hookStart) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := h.base.RoundTrip(req)
	if err == nil && req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/agents") {
		h.once.Do(func() {
			if h.hook != nil {
				h.hook()
			}
		})
	}
	return resp, err
}

// A parent retired while its child's start is on its way back ends the
// child on the Coordinator: the client forgets the child as it forgets one
// started before the retire, instead of keeping its handle (and its place
// in the index by lineage) until Client.Close, and closing it calls nobody.
func TestChildStartedWhileParentRetiresIsForgotten(t *testing.T) {
	for _, kind := range []string{"session", "service"} {
		t.Run(kind, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := caracaltest.Start(t, caracaltest.InMemory())
				rt := &hookStart{base: st.Transport()}
				c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: rt}))
				require.NoError(t, err)
				ctx := t.Context()
				var agent *caracal.Agent
				var closeParent func(context.Context) error
				if kind == "session" {
					p, err := c.Spawn(ctx)
					require.NoError(t, err)
					agent, closeParent = p.Agent(), p.Close
				} else {
					p, err := c.SpawnService(ctx)
					require.NoError(t, err)
					agent, closeParent = p.Agent(), p.Close
				}
				rt.once = sync.Once{}
				rt.hook = func() { require.NoError(t, closeParent(context.Background())) }
				child, err := c.Spawn(ctx, caracal.WithParent(agent))
				require.NoError(t, err)
				info, ok := st.SessionInfo(child.ID())
				require.True(t, ok)
				require.Equal(t, "terminated", info.Status, "the Coordinator ended the child with its parent")

				synctest.Wait()
				open, _, _ := caracal.TrackedSizes(c)
				assert.Zero(t, open, "the child's handle is still held")
				assert.Zero(t, caracal.IndexedSessions(c))
				assert.ErrorIs(t, context.Cause(child.Context()), caracal.ErrSessionClosed)
				retires := st.Count(caracaltest.RouteRetire)
				require.NoError(t, child.Close(ctx))
				assert.Equal(t, retires, st.Count(caracaltest.RouteRetire), "closing the child called the Coordinator")
				require.NoError(t, c.Close(context.Background()))
			})
		})
	}
}
