package caracal_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// A baggage that names a Caracal field twice with different values names two
// identities: a component in front that reads the first one may have vouched
// for it, so trusted propagation binds neither and refuses the request.
func TestTrustedPropagationRefusesConflictingCaracalMembers(t *testing.T) {
	c := mwClient(t, http.DefaultClient)
	mw, err := c.Middleware(caracal.TrustedPropagation())
	require.NoError(t, err)
	var got seen
	srv := httptest.NewServer(mw(got.handler()))
	defer srv.Close()

	const s1, s2 = "0198d0a2-0000-7000-8000-000000000001", "0198d0a2-0000-7000-8000-000000000002"
	send := func(bags ...string) *http.Response {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/tickets/1", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer tok")
		req.Header["Baggage"] = bags
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	for name, bags := range map[string][]string{
		"two headers":  {"caracal.agent_session=" + s1, "caracal.agent_session=" + s2},
		"one header":   {"caracal.agent_session=" + s1 + ",tenant=a,caracal.agent_session=" + s2},
		"edge":         {"caracal.agent_session=" + s1 + ",caracal.delegation_edge=" + s1 + ",caracal.delegation_edge=" + s2},
		"hop":          {"caracal.agent_session=" + s1 + ",caracal.hop=1", "caracal.hop=2"},
		"subject":      {"caracal.session=r1,caracal.session=r2"},
		"parent edge":  {"caracal.parent_edge=" + s1 + ",caracal.parent_edge=" + s2},
		"encoded same": {"caracal.agent_session=" + s1 + ",caracal.agent_session=%30198d0a2-0000-7000-8000-000000000002"},
	} {
		before := got.calls.Load()
		resp := send(bags...)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, name)
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"), name)
		assert.Equal(t, before, got.calls.Load(), "%s: the handler never runs", name)
	}

	// The same value twice names one identity.
	resp := send("caracal.agent_session="+s1, "caracal.agent_session="+s1+",caracal.hop=1,caracal.hop=01")
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, s1, got.agent.Load().SessionID())
	assert.Equal(t, 1, got.agent.Load().Hop())
}

// A Caracal id of the wrong form refuses the request under
// TrustedPropagation, and, like the other irregularities, is logged once.
func TestMiddlewareLogsMalformedIDsOnce(t *testing.T) {
	var records atomic.Int32
	c := mwClient(t, http.DefaultClient, caracal.WithLogger(slog.New(countHandler{&records})))
	mw, err := c.Middleware(caracal.TrustedPropagation())
	require.NoError(t, err)
	var got seen
	h := mw(got.handler())
	for _, bag := range []string{"caracal.agent_session=a%20b", "caracal.delegation_edge=" + strings.Repeat("e", 129), "caracal.agent_session=a/b"} {
		rec := serve(h, http.Header{"Authorization": {"Bearer t"}, "Baggage": {bag}})
		assert.Equal(t, http.StatusBadRequest, rec.Code, bag)
	}
	assert.Zero(t, got.calls.Load(), "nothing is bound from a refused request")
	assert.Equal(t, int32(1), records.Load())
}
