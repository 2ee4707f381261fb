package caracal

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The transport closes the body on its local refusals too, and sends
// nothing: a Gateway-targeted request without a resource, a request naming
// a resource whose path cannot be routed, and a redirect into a binding.
func TestTransportRefusalsCloseTheBody(t *testing.T) {
	c := unitClient(t)
	rec := &recorder{}
	ctx := NewContext(context.Background(), unitAgent())
	scoped := c.newTransport(rec, []TransportOption{WithScopes("tickets:read")}, (&fakeMint{}).Mint)
	for _, tc := range []struct {
		name string
		tr   http.RoundTripper
		req  func(body *closeTracker) *http.Request
		want func(t *testing.T, err error)
	}{
		{"gateway without resource", scoped, func(b *closeTracker) *http.Request {
			r, _ := http.NewRequestWithContext(ctx, http.MethodPost, testGateway+"/x", b)
			return r
		}, func(t *testing.T, err error) { assert.ErrorContains(t, err, "X-Caracal-Resource") }},
		{"unroutable resource", scoped, func(b *closeTracker) *http.Request {
			r, _ := http.NewRequestWithContext(ctx, http.MethodPost, testUpstream+"/a/%2e%2e/b", b)
			r.Header.Set("X-Caracal-Resource", "resource://tickets")
			return r
		}, func(t *testing.T, err error) { assert.ErrorContains(t, err, "dot segment") }},
		{"redirected in", scoped, func(b *closeTracker) *http.Request {
			r, _ := http.NewRequestWithContext(ctx, http.MethodPost, testUpstream+"/x", b)
			prev, _ := http.NewRequest(http.MethodGet, "http://elsewhere.test/hop", nil)
			r.Response = &http.Response{Request: prev}
			return r
		}, func(t *testing.T, err error) { assert.ErrorContains(t, err, "elsewhere.test redirected") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := &closeTracker{Reader: strings.NewReader("body")}
			_, err := tc.tr.RoundTrip(tc.req(body))
			require.Error(t, err)
			tc.want(t, err)
			assert.True(t, body.closed.Load(), "the body is closed on the error path")
		})
	}
	assert.Empty(t, rec.all(), "nothing was sent")
}
