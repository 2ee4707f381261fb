package caracal_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// diffPrefix is the path of the tickets binding in FuzzRouteAgreesWithGateway.
const diffPrefix = "/api"

// FuzzRouteAgreesWithGateway sends fuzzed paths under a bound prefix
// through a governed transport to the test Gateway. Whatever the SDK routes
// must not be refused by the Gateway as traversal (the SDK applies the same
// rule, PROTOCOL §8.1 and §8.2 row 9), and the upstream must receive the
// caller's path after the binding prefix, with its escaping.
func FuzzRouteAgreesWithGateway(f *testing.F) {
	var mu sync.Mutex
	var got *url.URL
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.URL
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	st := caracaltest.Start(f, caracaltest.InMemory(),
		caracaltest.WithLimits(caracaltest.Limits{MintPerMinute: 1 << 30}),
		caracaltest.WithResource(caracaltest.Resource{Identifier: tickets, Scopes: []string{"tickets:read"}, Upstream: up}))
	cfg := st.Config()
	base := st.UpstreamURL(tickets)
	cfg.Bindings = []caracal.ResourceBinding{{ResourceID: tickets, UpstreamPrefix: base + diffPrefix}}
	c, err := caracal.NewFromConfig(cfg, st.ClientOptions()...)
	require.NoError(f, err)
	f.Cleanup(func() { _ = c.Close(context.Background()) })
	root, err := c.Spawn(context.Background())
	require.NoError(f, err)
	reader, err := c.Spawn(root.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, tickets, caracal.Constraints{}, time.Hour)))
	require.NoError(f, err)
	hc := c.HTTPClient(caracal.WithScopes("tickets:read"))
	host := mustParse(f, base).Host

	for _, s := range []struct {
		explicit bool
		rest     string
	}{
		{false, "/tickets/1"},
		{false, ""},
		{false, "/"},
		{false, "/a%2Fb/c"},
		{false, "/caf%C3%A9"},
		{false, "/a/%2e%2e/b"},
		{false, "/a/%252e%252e/b"},
		{false, "/a..b/.c"},
		{false, "//x"},
		{true, "/tickets/1"},
		{true, ".."},
		{true, "./x"},
		{true, "%2e/x"},
		{true, "x/y"},
	} {
		f.Add(s.explicit, s.rest)
	}
	f.Fuzz(func(t *testing.T, explicit bool, rest string) {
		target, err := url.Parse(base + diffPrefix + rest)
		if err != nil || target.Host != host || target.Opaque != "" {
			return
		}
		req, err := http.NewRequestWithContext(reader.Context(), http.MethodGet, target.String(), nil)
		if err != nil {
			return
		}
		if explicit {
			req.Header.Set("X-Caracal-Resource", tickets)
		}
		mu.Lock()
		got = nil
		mu.Unlock()
		sent := st.Count(caracaltest.RouteGateway)
		resp, err := hc.Do(req)
		if err != nil {
			require.Equal(t, sent, st.Count(caracaltest.RouteGateway), "a request that failed was sent: %v", err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if st.Count(caracaltest.RouteGateway) == sent {
			return // not routed
		}
		var e struct {
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(body, &e)
		require.NotEqual(t, "path traversal not permitted", e.Description,
			"the SDK routed %q (wire path %q) and the Gateway refused it as traversal", target.String(), req.URL.EscapedPath())
		require.Equal(t, http.StatusOK, resp.StatusCode, "%q: %s", target.String(), body)
		mu.Lock()
		u := got
		mu.Unlock()
		require.NotNil(t, u, "%q: the upstream was not reached", target.String())
		wantPath := strings.TrimPrefix(target.Path, diffPrefix)
		if !strings.HasPrefix(wantPath, "/") {
			wantPath = "/" + wantPath
		}
		require.Equal(t, wantPath, u.Path, "%q: the upstream got another path", target.String())
		if esc, ok := strings.CutPrefix(target.EscapedPath(), diffPrefix); ok {
			if !strings.HasPrefix(esc, "/") {
				esc = "/" + esc
			}
			if dec, err := url.PathUnescape(esc); err == nil && dec == wantPath {
				require.Equal(t, esc, u.EscapedPath(), "%q: the upstream got another escaping", target.String())
			}
		}
	})
}

func mustParse(t testing.TB, s string) *url.URL {
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}
