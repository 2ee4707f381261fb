package caracal_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// A header the caller set under a key net/http does not canonicalise
// ("authorization", written into the map directly) is still a header of the
// request on the wire. On a Gateway request the transport's own
// Authorization, X-Caracal-Resource and envelope headers replace the
// caller's in every spelling, so the Gateway never gets two (of which an
// HTTP/2 connection may send the caller's first).
func TestGatewayRequestHeadersReplaceTheCallersInEverySpelling(t *testing.T) {
	g := startGoverned(t)
	inner := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(inner.CloseIdleConnections)
	var sent http.Header
	base := rtFunc(func(r *http.Request) (*http.Response, error) {
		sent = r.Header.Clone()
		return inner.RoundTrip(r)
	})
	hc := &http.Client{Transport: g.c.Transport(base, caracal.WithScopes("tickets:read"))}
	r, err := http.NewRequestWithContext(g.reader.Context(), http.MethodGet, g.url(tickets, "/tickets/1"), nil)
	require.NoError(t, err)
	r.Header["authorization"] = []string{"Bearer caller-credential"}
	r.Header["x-caracal-resource"] = []string{ledger}
	r.Header["baggage"] = []string{"caracal.agent_session=forged"}
	r.Header["traceparent"] = []string{"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	resp, err := hc.Do(r)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	for _, name := range []string{"Authorization", "X-Caracal-Resource", "Baggage", "Traceparent"} {
		var values []string
		for k, vs := range sent {
			if strings.EqualFold(k, name) {
				values = append(values, vs...)
			}
		}
		assert.Len(t, values, 1, "%s: %q", name, values)
	}
	assert.NotContains(t, sent.Get("Authorization"), "caller-credential")
	assert.Equal(t, tickets, sent.Get("X-Caracal-Resource"))
	assert.Equal(t, []string{"Bearer caller-credential"}, r.Header[strings.ToLower("Authorization")], "the caller's request is left as it was")
}

// With PropagateAlways, a request outside every binding gets the envelope
// merged into the caller's envelope headers in whatever spelling the caller
// set them, and a caracal.* member the caller wrote is dropped there too.
func TestPropagatedEnvelopeMergesTheCallersHeadersInEverySpelling(t *testing.T) {
	g := startGoverned(t)
	var sent http.Header
	base := rtFunc(func(r *http.Request) (*http.Response, error) {
		sent = r.Header.Clone()
		return jsonAnswer(`{}`), nil
	})
	hc := &http.Client{Transport: g.c.Transport(base, caracal.WithPropagation(caracal.PropagateAlways))}
	r, err := http.NewRequestWithContext(g.reader.Context(), http.MethodGet, "https://elsewhere.example/x", nil)
	require.NoError(t, err)
	r.Header["baggage"] = []string{"caracal.agent_session=forged,tenant=acme"}
	resp, err := hc.Do(r)
	require.NoError(t, err)
	_ = resp.Body.Close()

	var values []string
	for k, vs := range sent {
		if strings.EqualFold(k, "Baggage") {
			values = append(values, vs...)
		}
	}
	require.Len(t, values, 1, "%q", values)
	assert.NotContains(t, values[0], "forged")
	assert.Contains(t, values[0], "tenant=acme")
	assert.Contains(t, values[0], "caracal.agent_session="+g.reader.Agent().SessionID())
}
