package caracal_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// threeApps is a zone of three applications chained the way deployments
// chain them: A calls B's API (resource://b-api, which the policy grants
// to A), and B hands work on to C, which calls resource://c-api. Each
// application owns a resource of its own for its lifecycle tokens.
type threeApps struct {
	st      *caracaltest.Stack
	a, b, c *caracal.Client
}

func newThreeApps(t *testing.T) *threeApps {
	t.Helper()
	apps := []caracaltest.App{{ID: "app-a", Secret: "a-secret"}, {ID: "app-b", Secret: "b-secret"}, {ID: "app-c", Secret: "c-secret"}}
	opts := []caracaltest.Option{caracaltest.WithoutDefaults()}
	for _, app := range apps {
		opts = append(opts, caracaltest.WithApplication(app))
	}
	for _, r := range []struct{ id, scope, owner, role string }{
		{"resource://a-home", "a:admin", "app-a", "admin"},
		{"resource://b-api", "b:read", "app-a", "caller"},
		{"resource://b-home", "b:admin", "app-b", "admin"},
		{"resource://c-api", "c:read", "app-c", "worker"},
	} {
		opts = append(opts, caracaltest.WithResource(caracaltest.Resource{Identifier: r.id, Scopes: []string{r.scope}}),
			caracaltest.WithGrant(r.id, r.owner, map[string][]string{r.role: {r.scope}}))
	}
	st := caracaltest.Start(t, opts...)
	secrets := map[string]string{}
	for _, a := range apps {
		secrets[a.ID] = a.Secret
	}
	client := func(app string, resources ...string) *caracal.Client {
		cfg := st.Config()
		cfg.ApplicationID, cfg.ClientSecret = app, secrets[app]
		cfg.Resources, cfg.Bindings = resources, nil
		for _, b := range st.Config().Bindings {
			for _, r := range resources {
				if b.ResourceID == r {
					cfg.Bindings = append(cfg.Bindings, b)
				}
			}
		}
		hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		c, err := caracal.NewFromConfig(cfg, caracal.WithHTTPClient(hc))
		require.NoError(t, err)
		t.Cleanup(func() {
			_ = c.Close(context.Background())
			hc.CloseIdleConnections()
		})
		return c
	}
	return &threeApps{
		st: st,
		a:  client("app-a", "resource://a-home", "resource://b-api"),
		b:  client("app-b", "resource://b-home", "resource://c-api"),
		c:  client("app-c", "resource://c-api"),
	}
}

// callB sends a governed GET to B's API from a child of an A session
// narrowed to b:read, and returns the response body.
func (x *threeApps) callB(t *testing.T) (child *caracal.Session, status int, body string) {
	t.Helper()
	root, err := x.a.Spawn(t.Context(), caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	child, err = x.a.Spawn(root.Context(), caracal.WithLabels("caller"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"b:read"}, "resource://b-api", caracal.Constraints{}, 5*time.Minute)))
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(child.Context(), http.MethodGet, x.st.UpstreamURL("resource://b-api")+"/work", nil)
	require.NoError(t, err)
	resp, err := x.a.HTTPClient(caracal.WithScopes("b:read")).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return child, resp.StatusCode, string(b)
}

// B's server binds A's agent from the verified resource token. B's client
// cannot mint for it (the STS mints only for the caller's own sessions):
// its transport refuses before any call, saying what to do, instead of
// sending the STS A's session and edge under B's credentials.
func TestTransportRefusesInboundAgentOfAnotherApplication(t *testing.T) {
	x := newThreeApps(t)
	mw, err := x.b.Middleware(caracal.VerifyTokens("resource://b-api"))
	require.NoError(t, err)
	errs := make(chan error, 1)
	require.NoError(t, x.st.SetUpstream("resource://b-api", mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, x.st.UpstreamURL("resource://c-api")+"/job", nil)
		if err == nil {
			var resp *http.Response
			if resp, err = x.b.HTTPClient(caracal.WithScopes("c:read")).Do(req); err == nil {
				resp.Body.Close()
			}
		}
		errs <- err
	}))))

	child, status, body := x.callB(t)
	require.Equal(t, http.StatusOK, status, body)
	err = <-errs
	require.ErrorIs(t, err, caracal.ErrInvalidRequest)
	assert.Contains(t, err.Error(), "app-a")
	assert.Contains(t, err.Error(), "WithoutParent", "says how to act as B")
	for _, r := range x.st.Requests() {
		if r.Pattern == caracaltest.RouteToken && r.Form.Get("application_id") == "app-b" {
			assert.NotEqual(t, child.ID(), r.Form.Get("agent_session_id"), "no mint for A's session under B's credentials")
		}
	}
}

// ToApplication names the receiving session's application in the
// delegation request: B delegates to a session of C, which then holds the
// edge as one granted to it.
func TestDelegateToAnotherApplicationsSession(t *testing.T) {
	x := newThreeApps(t)
	giver, err := x.b.Spawn(t.Context(), caracal.WithLabels("relay"))
	require.NoError(t, err)
	peer, err := x.c.Spawn(t.Context(), caracal.WithLabels("worker"))
	require.NoError(t, err)

	d, err := x.b.Delegate(giver.Context(), peer.ID(),
		caracal.Grant.Narrow([]string{"c:read"}, "resource://c-api", caracal.Constraints{}, time.Minute), caracal.ToApplication("app-c"))
	require.NoError(t, err)
	edge, ok := x.st.EdgeInfo(d.ID)
	require.True(t, ok)
	assert.Equal(t, peer.ID(), edge.Target)
	ctx, err := x.c.AcceptDelegation(peer.Context(), d.ID)
	require.NoError(t, err)
	assert.Equal(t, d.ID, mustAgent(t, ctx).DelegationID())
}

// Without ToApplication the Coordinator refuses a delegation to another
// application's session with a bare 409 delegation_application_mismatch;
// the error says to name the receiver's application.
func TestDelegateToAnotherApplicationWithoutToApplicationSaysSo(t *testing.T) {
	x := newThreeApps(t)
	giver, err := x.b.Spawn(t.Context(), caracal.WithLabels("relay"))
	require.NoError(t, err)
	peer, err := x.c.Spawn(t.Context(), caracal.WithLabels("worker"))
	require.NoError(t, err)

	_, err = x.b.Delegate(giver.Context(), peer.ID(),
		caracal.Grant.Narrow([]string{"c:read"}, "resource://c-api", caracal.Constraints{}, time.Minute))
	var e *caracal.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "delegation_application_mismatch", e.Code)
	assert.ErrorIs(t, err, caracal.ErrConflict)
	assert.ErrorContains(t, err, "ToApplication")
}
