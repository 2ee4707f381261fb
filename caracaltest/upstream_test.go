package caracaltest_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/caracaltest"
)

func TestSetUpstream(t *testing.T) {
	st := caracaltest.Start(t, caracaltest.WithResource(caracaltest.Resource{
		Identifier: "resource://remote", Scopes: []string{"remote:read"}, UpstreamURL: "http://remote.test"}))
	w := wire{t: t, s: st, hc: http.DefaultClient}
	tok := w.lifecycle()
	_, child, edge := w.narrowed(tok, "reader", "tickets:read")
	call := func() reply {
		m := w.mint(child, edge, "tickets:read")
		require.Equal(t, 200, m.status, m.raw)
		return w.do("GET", st.GatewayURL()+"/tickets/1", nil,
			"Authorization", "Bearer "+m.body["access_token"].(string), "X-Caracal-Resource", tickets)
	}

	require.NoError(t, st.SetUpstream(tickets, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.WriteHeader(http.StatusTeapot)
		_, _ = rw.Write([]byte("mine"))
	})))
	r := call()
	assert.Equal(t, http.StatusTeapot, r.status)
	assert.Equal(t, "mine", r.raw)

	// Directly, by URL, as well.
	resp, err := http.Get(st.UpstreamURL(tickets) + "/tickets/1")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusTeapot, resp.StatusCode)

	require.NoError(t, st.SetUpstream(tickets, nil))
	r = call()
	assert.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, r.raw, `"path":"/tickets/1"`, "the echo upstream again")

	assert.ErrorContains(t, st.SetUpstream("resource://nope", nil), `unknown resource "resource://nope"`)
	assert.ErrorContains(t, st.SetUpstream("resource://remote", nil), "served at its own UpstreamURL")
}
