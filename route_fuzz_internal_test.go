package caracal

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/wire"
)

// fuzzBindings are the bindings FuzzTransportRouting routes against, with
// their prefixes already split into origin and decoded path.
var fuzzBindings = []struct {
	resource, prefix, origin, path string
}{
	{"resource://tickets", "http://tickets.test", "http://tickets.test", ""},
	{"resource://tickets-admin", "http://tickets.test/admin/", "http://tickets.test", "/admin"},
	{"resource://api", "https://api.test:8443/v1", "https://api.test:8443", "/v1"},
	{"resource://api-deep", "https://api.test:8443/v1/a%2Fb/c", "https://api.test:8443", "/v1/a/b/c"},
	{"resource://cafe", "http://enc.test/caf%C3%A9", "http://enc.test", "/café"},
}

const fuzzGateway = "http://gateway.test:8081/gw/"

// fuzzOrigins prefix the fuzzed rest of a URL, so that most inputs reach a
// binding's host; an index past them uses the rest as the whole URL.
var fuzzOrigins = []string{
	"http://tickets.test", "http://TICKETS.test", "https://tickets.test", "http://tickets.test:80",
	"https://api.test:8443", "https://api.test", "http://api.test:8443", "http://enc.test",
	"http://gateway.test:8081", "http://u:p@tickets.test", "http://tickets.test.evil",
}

// FuzzTransportRouting sends fuzzed URLs through a transport whose base
// RoundTripper records what reaches it, and checks the route decision of
// PROTOCOL §8.1 from the outside: a request gets a bearer only if its
// scheme and host[:port] are a binding's, its decoded path is the binding's
// prefix path or below it on a segment boundary and holds no dot segment or
// backslash however often it is decoded; the resource is then the longest
// such binding's, and the request goes to the Gateway. Any other request
// reaches the base transport untouched, or fails without reaching it.
func FuzzTransportRouting(f *testing.F) {
	c := unitClient(f, func(cfg *Config) {
		cfg.GatewayURL = fuzzGateway
		cfg.Bindings = nil
		for _, b := range fuzzBindings {
			cfg.Bindings = append(cfg.Bindings, ResourceBinding{ResourceID: b.resource, UpstreamPrefix: b.prefix})
		}
	})
	ctx := NewContext(context.Background(), unitAgent())

	for _, s := range []struct {
		origin uint8
		rest   string
	}{
		{0, "/tickets/1?x=1#frag"},
		{0, "/admin"},
		{0, "/admin/users"},
		{0, "/administrator"},
		{0, "/admin%2Fusers"},
		{0, "/a/%2e%2e/admin"},
		{0, "/a/%252e%252E/b"},
		{0, `/a\b`},
		{0, "/a/./b"},
		{0, ""},
		{1, "/admin/x"},
		{2, "/x"},
		{3, "/x"},
		{4, "/v1"},
		{4, "/v1/"},
		{4, "/v1x"},
		{4, "/v1/a%2Fb/c/d"},
		{4, "/v1/a/b/c"},
		{4, "/v2"},
		{5, "/v1/x"},
		{6, "/v1/x"},
		{7, "/caf%C3%A9/menu"},
		{7, "/café"},
		{7, "/caf%c3%a9s"},
		{8, "/gw/x"},
		{8, "/other"},
		{9, "/x"},
		{10, "/x"},
		{255, "http://tickets.test/x"},
		{255, "//tickets.test/x"},
		{255, "tickets.test/x"},
		{255, "http://tickets.test%2F@evil.test/x"},
	} {
		f.Add(s.origin, s.rest)
	}

	f.Fuzz(func(t *testing.T, origin uint8, rest string) {
		target := rest
		if int(origin) < len(fuzzOrigins) {
			target = fuzzOrigins[origin] + rest
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return
		}
		before := snapshot(req)
		rec := &recorder{}
		mint := &fakeMint{}
		tr := c.newTransport(rec, []TransportOption{WithScopes("tickets:read")}, mint.Mint)
		resp, err := tr.RoundTrip(req)
		if resp != nil {
			_ = resp.Body.Close()
		}
		require.Equal(t, before, snapshot(req), "the caller's request is unchanged")
		sent := rec.all()
		want, routable := expectedRoute(req.URL)
		if err != nil {
			require.Empty(t, sent, "a refused request reaches nothing")
			require.Zero(t, mint.count())
			require.False(t, routable, "a bound request is refused: %v", err)
			return
		}
		require.Len(t, sent, 1)
		out := sent[0]
		bearer := out.Header.Get("Authorization")
		if bearer == "" {
			require.Same(t, req, out, "a request that is not routed goes out as it is")
			require.Zero(t, mint.count())
			require.False(t, routable && cleanPath(req.URL.Path), "a plainly bound request is not routed: %s", target)
			return
		}
		require.True(t, routable, "%s was given a bearer but matches no binding", target)
		require.Equal(t, "Bearer mandate-1", bearer)
		require.Equal(t, 1, mint.count())
		require.Equal(t, want, mint.reqs[0].Resource)
		require.Equal(t, want, out.Header.Get(wire.HeaderResource))
		require.Equal(t, "http", out.URL.Scheme)
		require.Equal(t, "gateway.test:8081", out.URL.Host)
		require.Equal(t, "gateway.test:8081", out.Host)
		require.Nil(t, out.URL.User)
		require.Empty(t, out.URL.Fragment)
		p := out.URL.EscapedPath()
		require.True(t, p == "/gw" || strings.HasPrefix(p, "/gw/"), "rewritten path %q leaves the Gateway's base", p)
		require.False(t, hasDotSegment(p), "rewritten path %q", p)
	})
}

// expectedRoute is the binding u must route to, if any: same scheme and
// host[:port] (hosts compared case-insensitively), decoded path equal to
// the prefix path or under it on a segment boundary, longest prefix first;
// and a path that has no dot segment or backslash after any number of
// decodings.
func expectedRoute(u *url.URL) (string, bool) {
	if u.Opaque != "" || hasDotSegment(u.Path) {
		return "", false
	}
	origin := strings.ToLower(u.Scheme + "://" + u.Host)
	best, bestLen := "", -1
	for _, b := range fuzzBindings {
		if origin != strings.ToLower(b.origin) {
			continue
		}
		if b.path != "" && u.Path != b.path && !strings.HasPrefix(u.Path, b.path+"/") {
			continue
		}
		if len(b.path) > bestLen {
			best, bestLen = b.resource, len(b.path)
		}
	}
	return best, bestLen >= 0
}

// cleanPath reports a path with nothing to decode and no dot or backslash,
// which the route decision cannot have any reason to refuse.
func cleanPath(p string) bool {
	return !strings.ContainsAny(p, `%.\`)
}

// hasDotSegment decodes p until it no longer changes (valid %XX escapes
// only, invalid ones kept) and reports a "." or ".." segment or a
// backslash in any round.
func hasDotSegment(p string) bool {
	for range 64 {
		if strings.Contains(p, `\`) {
			return true
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == "." || seg == ".." {
				return true
			}
		}
		next := decodeValid(p)
		if next == p {
			return false
		}
		p = next
	}
	return true
}

func decodeValid(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			v, _ := url.PathUnescape(s[i : i+3])
			b.WriteString(v)
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
