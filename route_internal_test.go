package caracal

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/wire"
)

func TestRouterDecisions(t *testing.T) {
	r := newRouter(testGateway+"/gw/", []ResourceBinding{
		{ResourceID: "resource://tickets", UpstreamPrefix: "http://tickets.test"},
		{ResourceID: "resource://admin", UpstreamPrefix: "http://tickets.test/admin/"},
		{ResourceID: "resource://other", UpstreamPrefix: "https://other.test:8443/api"},
	})
	tests := []struct {
		url, header      string
		routed           bool
		target, resource string
		err              bool
	}{
		{url: "http://tickets.test/tickets/42?x=1#frag", routed: true, target: testGateway + "/gw/tickets/42?x=1", resource: "resource://tickets"},
		{url: "http://TICKETS.test/tickets", routed: true, target: testGateway + "/gw/tickets", resource: "resource://tickets"},
		{url: "http://tickets.test/admin/users", routed: true, target: testGateway + "/gw/users", resource: "resource://admin"},
		{url: "http://tickets.test/admin", routed: true, target: testGateway + "/gw/", resource: "resource://admin"},
		{url: "http://tickets.test/administrator", routed: true, target: testGateway + "/gw/administrator", resource: "resource://tickets"},
		{url: "https://other.test:8443/api/v1/x%2Fy", routed: true, target: testGateway + "/gw/v1/x%2Fy", resource: "resource://other"},
		{url: "https://other.test:8443/apiary", routed: false},
		{url: "http://other.test:8443/api/v1", routed: false},
		{url: "https://other.test/api/v1", routed: false},
		{url: "http://elsewhere.test/tickets", routed: false},
		{url: "http://elsewhere.test/tickets/1", header: "resource://other", routed: true, target: testGateway + "/gw/tickets/1", resource: "resource://other"},
		{url: "http://elsewhere.test/x", header: "resource://unbound", routed: true, target: testGateway + "/gw/x", resource: "resource://unbound"},
		{url: testGateway + "/gw/tickets/1", header: "resource://tickets", routed: true, target: testGateway + "/gw/tickets/1", resource: "resource://tickets"},
		{url: testGateway + "/gw/tickets/1", err: true},
		{url: testGateway + "/gwx/tickets", routed: false},
		{url: "http://tickets.test/a/../b", routed: false},
		{url: "http://tickets.test/a/%2e%2e/b", routed: false},
		{url: "http://tickets.test/a/%252e%252e/b", routed: false},
		{url: "http://tickets.test/a%5Cb", routed: false},
		{url: "http://elsewhere.test/a/../b", routed: false},
		// A request that names its resource asks to be governed: one that
		// cannot go through the Gateway fails instead of going out as it is.
		{url: "http://elsewhere.test/a/../b", header: "resource://other", err: true},
		{url: "http://tickets.test/a%5Cb", header: "resource://tickets", err: true},
	}
	for _, tc := range tests {
		t.Run(tc.url+" "+tc.header, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, tc.url, nil)
			require.NoError(t, err)
			if tc.header != "" {
				req.Header.Set(wire.HeaderResource, tc.header)
			}
			d, err := r.decide(req)
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.routed, d.routed)
			if tc.routed {
				target := req.URL.String() // targeted: the request keeps its URL
				if d.target != nil {
					target = d.target.String()
				}
				assert.Equal(t, tc.target, target)
				assert.Equal(t, tc.resource, d.resource)
			}
		})
	}

	bad := newRouter("::not a url", nil)
	_, err := bad.decide(httptest.NewRequest(http.MethodGet, "http://x.test/", nil))
	require.Error(t, err, "an unusable gateway URL fails closed")

	none := newRouter("", []ResourceBinding{{ResourceID: "r", UpstreamPrefix: "http://tickets.test"}})
	d, err := none.decide(httptest.NewRequest(http.MethodGet, "http://tickets.test/x", nil))
	require.NoError(t, err)
	require.False(t, d.routed, "no gateway URL: nothing is routed")
	named := httptest.NewRequest(http.MethodGet, "http://tickets.test/x", nil)
	named.Header.Set(wire.HeaderResource, "r")
	_, err = none.decide(named)
	require.ErrorContains(t, err, "no Gateway URL is configured", "a request that names its resource is not sent ungoverned")
}

func TestGatewayRequest(t *testing.T) {
	c := unitClient(t)
	ctx := context.Background()
	req, err := c.GatewayRequest(ctx, http.MethodPost, " resource://tickets ", "tickets/42?full=1", strings.NewReader("x"))
	require.NoError(t, err)
	assert.Equal(t, testGateway+"/tickets/42?full=1", req.URL.String())
	assert.Equal(t, "resource://tickets", req.Header.Get(wire.HeaderResource))
	assert.Equal(t, http.MethodPost, req.Method)

	for _, p := range []string{"http://evil.test/x", "//evil.test/x", "/a#frag", "/a/../b", "/a/%2e%2e/b", `/a\b`} {
		_, err := c.GatewayRequest(ctx, http.MethodGet, "resource://tickets", p, nil)
		assert.ErrorIs(t, err, ErrInvalidRequest, p)
	}
	_, err = c.GatewayRequest(ctx, http.MethodGet, " ", "/x", nil)
	assert.ErrorIs(t, err, ErrInvalidRequest)
	_, err = c.GatewayRequest(ctx, "BAD METHOD", "resource://tickets", "/x", nil)
	assert.ErrorIs(t, err, ErrInvalidRequest)
	noGW := unitClient(t, func(cfg *Config) { cfg.GatewayURL, cfg.Bindings = "", nil })
	_, err = noGW.GatewayRequest(ctx, http.MethodGet, "resource://tickets", "/x", nil)
	assert.ErrorContains(t, err, "no Gateway URL")
	assert.ErrorIs(t, err, ErrInvalidRequest)
}
