package caracaltest_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

type callerKey struct{}

// A handler's request context carries nothing of the client's context, in
// memory as over loopback: an upstream behind the Gateway that reads
// caracal.FromContext without a Middleware finds no agent (the caller's,
// with this process's lifecycle authority, would let it spawn and call as
// the caller), and no other value the client bound.
func TestHandlerContextCarriesNoClientValues(t *testing.T) {
	for name, opts := range map[string][]caracaltest.Option{"loopback": nil, "in memory": {caracaltest.InMemory()}} {
		t.Run(name, func(t *testing.T) {
			st := caracaltest.Start(t, opts...)
			c, err := st.NewClient()
			require.NoError(t, err)
			ctx := context.Background()
			defer c.Close(ctx)
			root, err := c.Spawn(ctx, caracal.WithLabels("dispatcher"))
			require.NoError(t, err)
			reader, err := c.Spawn(root.Context(), caracal.WithLabels("reader"),
				caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, 5*time.Minute)))
			require.NoError(t, err)

			type seen struct {
				agent bool
				value any
			}
			got := make(chan seen, 1)
			require.NoError(t, st.SetUpstream("resource://tickets", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, ok := caracal.FromContext(r.Context())
				got <- seen{ok, r.Context().Value(callerKey{})}
			})))
			rctx := context.WithValue(reader.Context(), callerKey{}, "the caller's")
			req, err := http.NewRequestWithContext(rctx, http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets/42", nil)
			require.NoError(t, err)
			resp, err := c.HTTPClient(caracal.WithScopes("tickets:read")).Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			s := <-got
			assert.False(t, s.agent, "the upstream's request context carries the caller's agent")
			assert.Nil(t, s.value, "the upstream's request context carries a value of the caller's context")
		})
	}
}
