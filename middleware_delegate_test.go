package caracal_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A Middleware that verifies nothing binds no session id: a delegation can
// neither be made from nor bound to such an agent, nor can a Gateway
// request be sent with it, and each is refused before any call instead of
// sent with an empty session (or bound to none, for the STS to refuse at
// every mint).
func TestSessionlessInboundAgentDelegatesNothing(t *testing.T) {
	g := startGoverned(t)
	mw, err := g.c.Middleware()
	require.NoError(t, err)
	hdr, err := g.c.Headers(g.reader.Context())
	require.NoError(t, err)
	d, err := g.c.Delegate(g.root.Context(), g.reader.ID(), caracal.Grant.Narrow([]string{"tickets:read"}, tickets, caracal.Constraints{}, time.Minute))
	require.NoError(t, err)

	var errs []error
	h := mw(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		a, ok := caracal.FromContext(r.Context())
		require.True(t, ok)
		require.Empty(t, a.SessionID())
		_, err := g.c.Delegate(r.Context(), g.root.ID(), caracal.Grant.Narrow([]string{"tickets:read"}, tickets, caracal.Constraints{}, time.Minute))
		errs = append(errs, err)
		_, err = g.c.AcceptDelegation(r.Context(), d.ID)
		errs = append(errs, err)
		_, err = g.c.AcceptDelegation(r.Context(), d.ID, caracal.SkipInboundCheck())
		errs = append(errs, err)
		_, err = get(t, g.c.HTTPClient(caracal.WithScopes("tickets:read")), r.Context(), g.url(tickets, "/tickets"))
		errs = append(errs, err)
	}))
	delegations, inbound, mints := g.st.Count(caracaltest.RouteDelegate), g.st.Count(caracaltest.RouteInbound), g.st.Count(caracaltest.RouteToken)
	req := httptest.NewRequest(http.MethodGet, "http://resource.test/", nil)
	req.Header = hdr
	h.ServeHTTP(httptest.NewRecorder(), req)
	require.Len(t, errs, 4)
	for i, err := range errs {
		assert.ErrorIs(t, err, caracal.ErrInvalidRequest, "call %d", i)
	}
	assert.Equal(t, delegations, g.st.Count(caracaltest.RouteDelegate), "no delegation request")
	assert.Equal(t, inbound, g.st.Count(caracaltest.RouteInbound), "no inbound check")
	assert.Equal(t, mints, g.st.Count(caracaltest.RouteToken), "no mint")
	assert.ErrorContains(t, errs[3], "no session id", "the advice fits an agent without a session")
}
