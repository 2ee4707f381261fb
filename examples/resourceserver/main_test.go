package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

func TestResourceServerVerifiesTheGatewayToken(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), nil, nil, &out))

	got := out.String()
	require.Regexp(t, `Direct request without a token: 401 Unauthorized \{"error":"missing_token"`, got)
	agent := regexp.MustCompile(`Agent ([0-9a-f-]{36}) calls GET`).FindStringSubmatch(got)
	require.Len(t, agent, 2)
	require.Regexp(t, `resource server: GET /tickets/9 by session `+agent[1]+` of application app-test, delegation [0-9a-f-]{36}, hop 1`, got)
	require.Regexp(t, `agent got: 200 OK \{.*"read_by":"`+agent[1]+`"`, got)
}

// Against a deployment (a caracaltest stack reached only through its
// profile), the server verifies with the deployment's keys and serves until
// its context ends. The stack's Gateway reaches it through a proxy to the
// address it listens on.
func TestResourceServerAgainstADeployment(t *testing.T) {
	st := caracaltest.Start(t)
	profile, err := st.WriteConfig(t.TempDir())
	require.NoError(t, err)

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	out := &output{listening: make(chan string, 1)}
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, []string{"CARACAL_CONFIG=" + profile}, out) }()
	var self string
	select {
	case self = <-out.listening:
	case err := <-done:
		t.Fatalf("run returned before serving: %v\n%s", err, out)
	}
	target, err := url.Parse(self)
	require.NoError(t, err)
	require.NoError(t, st.SetUpstream("resource://tickets", httputil.NewSingleHostReverseProxy(target)))

	c, err := st.NewClient()
	require.NoError(t, err)
	defer c.Close(context.Background())
	root, err := c.Spawn(context.Background())
	require.NoError(t, err)
	reader, err := c.Spawn(root.Context(), caracal.WithLabels("reader"), caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Minute)))
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(reader.Context(), http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets/9", nil)
	require.NoError(t, err)
	resp, err := c.HTTPClient(caracal.WithScopes("tickets:read")).Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Contains(t, string(body), `"read_by":"`+reader.ID()+`"`)

	// Without the Gateway's token, the same server refuses.
	direct, err := http.Get(self + "/tickets/9")
	require.NoError(t, err)
	direct.Body.Close()
	require.Equal(t, http.StatusUnauthorized, direct.StatusCode)

	stop()
	require.NoError(t, <-done)
	require.Contains(t, out.String(), "resource server: GET /tickets/9 by session "+reader.ID()+" of application app-test")
}

// A resource server calls nothing, so a deployment's configuration needs no
// resource binding for it: it serves until its context ends.
func TestResourceServerAgainstADeploymentWithoutBindings(t *testing.T) {
	st := caracaltest.Start(t)
	app := st.Application()
	environ := []string{
		"CARACAL_ZONE_ID=" + st.Zone(),
		"CARACAL_APPLICATION_ID=" + app.ID,
		"CARACAL_APP_CLIENT_SECRET=" + app.Secret,
		"CARACAL_STS_URL=" + st.STSURL(),
		"CARACAL_COORDINATOR_URL=" + st.CoordinatorURL(),
		"CARACAL_GATEWAY_URL=" + st.GatewayURL(),
	}
	ctx, stop := context.WithCancel(context.Background())
	stop()
	out := &output{listening: make(chan string, 1)}
	require.NoError(t, run(ctx, nil, environ, out))
	require.Contains(t, out.String(), "Resource server for resource://tickets listening on http://")
}

// output collects what run says, safe for the server's goroutines, and
// reports the address from its listening line.
type output struct {
	mu        sync.Mutex
	b         bytes.Buffer
	listening chan string
}

var listeningLine = regexp.MustCompile(`listening on (http://\S+) `)

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if m := listeningLine.FindSubmatch(p); m != nil {
		o.listening <- string(m[1])
	}
	return o.b.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}
