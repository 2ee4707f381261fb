package envelope

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHasDotSegment(t *testing.T) {
	encode := func(s string, times int) string {
		for range times {
			s = strings.ReplaceAll(s, "%", "%25")
		}
		return s
	}
	tests := []struct {
		path string
		want bool
	}{
		{"", false},
		{"/", false},
		{"/a/b/", false},
		{"/a/.b", false},
		{"/a/b.", false},
		{"/a/...", false},
		{"/a/b..c", false},
		{"/a%2Fb", false},
		{"/%zz/%", false},
		{"/a+b", false},
		{".", true},
		{"..", true},
		{"/a/./b", true},
		{"/a/../b", true},
		{"/a/..", true},
		{"../a", true},
		{"/a\\b", true},
		{"/a/%2e/b", true},
		{"/a/%2E%2E/b", true},
		{"/a/.%2e/b", true},
		{"/a/%5c", true},
		{"/a/%5C", true},
		{"/a%2F..%2Fb", true},
		{"/a/" + encode("%2e%2e", 7) + "/b", true}, // 8 decodes
		{"/a/" + encode("%5c", 7), true},
		{"/a/" + encode("%41", 7), false},          // decodes fully within 8 rounds
		{"/a/" + encode("%41", 8), true},           // still decodable after 8 rounds
		{"/a/" + encode("%2e%2e", 8) + "/b", true}, // idem
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, HasDotSegment(tt.path), "%q", tt.path)
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

func testRouter(t *testing.T, gateway string) *Router {
	t.Helper()
	r, err := NewRouter(gateway, []Binding{
		{"resource://root", "http://other.example"},
		{"resource://tickets", "http://up.example/api"},
		{"resource://tickets-v2", "http://up.example/api/v2/"},
		{"resource://slash", "https://third.example/"},
		{"resource://shadowed", "http://up.example/api"},
	})
	require.NoError(t, err)
	return r
}

func TestRoute(t *testing.T) {
	const gw = "https://gw.example:8443/base/"
	tests := []struct {
		name, target, explicit string
		ok                     bool
		want                   string // rewritten URL; "" when Targeted
		resource               string
		targeted               bool
	}{
		{"binding prefix stripped, query kept, fragment dropped", "http://up.example/api/tickets/1?x=1&y=%20#frag", "", true,
			"https://gw.example:8443/base/tickets/1?x=1&y=%20", "resource://tickets", false},
		{"prefix equal to path", "http://up.example/api", "", true, "https://gw.example:8443/base/", "resource://tickets", false},
		{"prefix with trailing slash", "http://up.example/api/", "", true, "https://gw.example:8443/base/", "resource://tickets", false},
		{"longest prefix first", "http://up.example/api/v2/x", "", true, "https://gw.example:8443/base/x", "resource://tickets-v2", false},
		{"longest prefix equal path", "http://up.example/api/v2", "", true, "https://gw.example:8443/base/", "resource://tickets-v2", false},
		{"not a path-segment prefix", "http://up.example/apiary", "", false, "", "", false},
		{"empty prefix path keeps path", "http://other.example/any/thing", "", true, "https://gw.example:8443/base/any/thing", "resource://root", false},
		{"empty prefix path, empty path", "http://other.example", "", true, "https://gw.example:8443/base", "resource://root", false},
		{"root prefix keeps path", "https://third.example/x", "", true, "https://gw.example:8443/base/x", "resource://slash", false},
		{"scheme must match", "https://other.example/x", "", false, "", "", false},
		{"host case-insensitive", "http://UP.Example/api/x", "", true, "https://gw.example:8443/base/x", "resource://tickets", false},
		{"port is part of the host", "http://up.example:80/api/x", "", false, "", "", false},
		{"unbound host", "http://nowhere.example/api/x", "", false, "", "", false},
		{"userinfo dropped", "http://u:p@up.example/api/x", "", true, "https://gw.example:8443/base/x", "resource://tickets", false},
		{"escaping kept", "http://up.example/api/a%2Fb?q", "", true, "https://gw.example:8443/base/a%2Fb?q", "resource://tickets", false},
		{"empty query kept", "http://up.example/api/x?", "", true, "https://gw.example:8443/base/x?", "resource://tickets", false},
		{"dot segment not routed", "http://up.example/api/../secret", "", false, "", "", false},
		{"encoded dot segment not routed", "http://up.example/api/%2e%2e/secret", "", false, "", "", false},
		{"double encoded dot segment not routed", "http://up.example/api/%252e%252e/secret", "", false, "", "", false},
		{"backslash not routed", "http://up.example/api/a%5Cb", "", false, "", "", false},
		{"dot segment with explicit resource not routed", "http://x.example/a/./b", "resource://tickets", false, "", "", false},
		{"dotted name is fine", "http://up.example/api/.well-known", "", true, "https://gw.example:8443/base/.well-known", "resource://tickets", false},
		{"gateway targeted", "https://gw.example:8443/base/tickets/1", " resource://tickets ", true, "", "resource://tickets", true},
		{"gateway targeted base", "https://gw.example:8443/base", "", true, "", "", true},
		{"gateway host case-insensitive", "https://GW.example:8443/base/x", "", true, "", "", true},
		{"gateway sibling path", "https://gw.example:8443/basement", "", false, "", "", false},
		{"gateway other scheme", "http://gw.example:8443/base/x", "", false, "", "", false},
		{"explicit binding wins over the longest prefix", "http://up.example/api/v2/x", "resource://tickets", true,
			"https://gw.example:8443/base/v2/x", "resource://tickets", false},
		{"explicit binding whose prefix does not match keeps the path", "http://up.example/api/x", "resource://tickets-v2", true,
			"https://gw.example:8443/base/api/x", "resource://tickets-v2", false},
		{"explicit on another host strips a string prefix", "http://elsewhere.example/apiary/x", "resource://tickets", true,
			"https://gw.example:8443/base/ary/x", "resource://tickets", false},
		{"explicit whose stripped prefix leaves a dot segment not routed", "http://elsewhere.example/api..", "resource://tickets", false, "", "", false},
		{"explicit whose stripped prefix leaves an encoded dot segment not routed", "http://up.example/api%2e/x", "resource://tickets", false, "", "", false},
		{"explicit without binding keeps path", "http://elsewhere.example/p/q?z=1", "resource://unknown", true,
			"https://gw.example:8443/base/p/q?z=1", "resource://unknown", false},
		{"explicit on gateway sibling", "https://gw.example:8443/basement", "resource://unknown", true,
			"https://gw.example:8443/base/basement", "resource://unknown", false},
		{"relative target gets a slash", "rel/x?q", "resource://unknown", true,
			"https://gw.example:8443/base/rel/x?q", "resource://unknown", false},
		{"blank explicit ignored", "http://up.example/api/x", "   ", true, "https://gw.example:8443/base/x", "resource://tickets", false},
	}
	r := testRouter(t, gw)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := mustParse(t, tt.target)
			before := *target
			d, ok := r.Route(target, tt.explicit)
			assert.Equal(t, before, *target, "target not modified")
			require.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.resource, d.Resource)
			assert.Equal(t, tt.targeted, d.Targeted)
			if tt.want == "" {
				assert.Nil(t, d.URL)
				return
			}
			require.NotNil(t, d.URL)
			assert.Equal(t, tt.want, d.URL.String())
			assert.Nil(t, d.URL.User)
			assert.Equal(t, "gw.example:8443", d.URL.Host)
		})
	}
}

func TestRouteGatewayWithoutPath(t *testing.T) {
	r := testRouter(t, "http://127.0.0.1:9000")
	d, ok := r.Route(mustParse(t, "http://up.example/api/v2/x/y"), "")
	require.True(t, ok)
	assert.Equal(t, "http://127.0.0.1:9000/x/y", d.URL.String())

	d, ok = r.Route(mustParse(t, "http://127.0.0.1:9000/anything"), "")
	require.True(t, ok)
	assert.True(t, d.Targeted)

	r = testRouter(t, "http://gw/b%20ase/")
	d, ok = r.Route(mustParse(t, "http://up.example/api/x%20y"), "")
	require.True(t, ok)
	assert.Equal(t, "http://gw/b%20ase/x%20y", d.URL.String())
}

func TestRouteWithoutGateway(t *testing.T) {
	r := testRouter(t, "")
	_, ok := r.Route(mustParse(t, "http://up.example/api/x"), "resource://tickets")
	assert.False(t, ok, "no routing without a gateway URL")
	var nilRouter *Router
	_, ok = nilRouter.Route(mustParse(t, "http://up.example/api/x"), "")
	assert.False(t, ok)
	_, ok = testRouter(t, "https://gw").Route(nil, "")
	assert.False(t, ok)
	_, ok = testRouter(t, "https://gw").Route(mustParse(t, "mailto:x@example.com"), "r")
	assert.False(t, ok, "opaque URL")
	_, err := r.GatewayURL("/x")
	assert.Error(t, err)
}

func TestNewRouterErrors(t *testing.T) {
	for _, tt := range []struct {
		gateway  string
		bindings []Binding
		msg      string
	}{
		{"ftp://gw", nil, "scheme"},
		{"https://", nil, "no host"},
		{"gw.example", nil, "scheme"},
		{"https://u:p@gw", nil, "credentials"},
		{"https://gw", []Binding{{"", "http://x"}}, "empty resource id"},
		{"https://gw", []Binding{{"r", "x/y"}}, `binding "r"`},
		{"https://gw", []Binding{{"r", "http://%zz"}}, "not a valid URL"},
	} {
		_, err := NewRouter(tt.gateway, tt.bindings)
		require.Error(t, err, tt.gateway)
		assert.Contains(t, err.Error(), tt.msg)
		assert.NotContains(t, err.Error(), ":p@", "no credentials in errors")
	}
}

func TestGatewayURL(t *testing.T) {
	r := testRouter(t, "https://gw.example/base/")
	for _, tt := range []struct{ path, want string }{
		{"tickets/1?x=1", "https://gw.example/base/tickets/1?x=1"},
		{"/tickets/1", "https://gw.example/base/tickets/1"},
		{"", "https://gw.example/base/"},
		{"/a%2Fb", "https://gw.example/base/a%2Fb"},
	} {
		u, err := r.GatewayURL(tt.path)
		require.NoError(t, err, tt.path)
		assert.Equal(t, tt.want, u.String())
	}
	for _, bad := range []string{"//evil.example/x", "http://x/y", "/a#f", "/a/../b", "/a/%2e%2e/b", "a\\b", "/%zz"} {
		_, err := r.GatewayURL(bad)
		assert.Error(t, err, bad)
	}
}
