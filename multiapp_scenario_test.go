package caracal_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// twoApps is application A (a dispatcher calling its own resource and
// handing work to B) and application B (a worker process, a resource
// server in front of resource://b-api that calls resource://b-store on,
// and a service), each with a recording logger.
type twoApps struct {
	st         *caracaltest.Stack
	a, b, bsrv *caracal.Client
	logA, logB *logRecorder
	secrets    []string
	inbound    chan inboundCall
	prefetch   int
	hcs        map[hcKey]*http.Client
}

type hcKey struct {
	c     *caracal.Client
	scope string
}

// inboundCall is what b-api's handler saw and what its onward call got.
type inboundCall struct {
	agent  *caracal.Agent
	status int
	echo   caracaltest.EchoResponse
	err    error
	// bearerUse is the use claim of the bearer Headers gives the handler.
	bearerUse string
}

func tokenUse(auth string) string {
	parts := strings.Split(strings.TrimPrefix(auth, "Bearer "), ".")
	if len(parts) != 3 {
		return "no token"
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct{ Use string }
	_ = json.Unmarshal(b, &c)
	return c.Use
}

func newTwoApps(t *testing.T, sameProcess bool, opts ...caracaltest.Option) *twoApps {
	t.Helper()
	opts = append(opts, caracaltest.WithoutDefaults(),
		caracaltest.WithApplication(caracaltest.App{ID: "app-a", Secret: "a-secret-value"}),
		caracaltest.WithApplication(caracaltest.App{ID: "app-b", Secret: "b-secret-value"}),
		caracaltest.WithResource(caracaltest.Resource{Identifier: "resource://a-home", Scopes: []string{"a:read", "a:write"}}),
		caracaltest.WithGrant("resource://a-home", "app-a", map[string][]string{"reader": {"a:read"}, "writer": {"a:read", "a:write"}}),
		caracaltest.WithResource(caracaltest.Resource{Identifier: "resource://b-api", Scopes: []string{"b:read"}}),
		caracaltest.WithGrant("resource://b-api", "app-b", map[string][]string{"worker": {"b:read"}}),
		caracaltest.WithResource(caracaltest.Resource{Identifier: "resource://b-store", Scopes: []string{"s:read"}}),
		caracaltest.WithGrant("resource://b-store", "app-b", map[string][]string{"worker": {"s:read"}}),
	)
	st := caracaltest.Start(t, opts...)
	x := &twoApps{st: st, logA: &logRecorder{}, logB: &logRecorder{}, inbound: make(chan inboundCall, 4),
		secrets: []string{"a-secret-value", "b-secret-value"}, hcs: map[hcKey]*http.Client{}}
	client := func(app, secret string, log *logRecorder, resources ...string) *caracal.Client {
		cfg := st.Config()
		cfg.ApplicationID, cfg.ClientSecret = app, secret
		cfg.Resources, cfg.Bindings = resources, nil
		for _, b := range st.Config().Bindings {
			for _, r := range resources {
				if b.ResourceID == r {
					cfg.Bindings = append(cfg.Bindings, b)
				}
			}
		}
		opts := append(st.ClientOptions(), caracal.WithLogger(slog.New(log)))
		c, err := caracal.NewFromConfig(cfg, opts...)
		require.NoError(t, err)
		return c
	}
	x.a = client("app-a", "a-secret-value", x.logA, "resource://a-home")
	x.b = client("app-b", "b-secret-value", x.logB, "resource://b-api", "resource://b-store")
	x.bsrv = client("app-b", "b-secret-value", x.logB, "resource://b-api", "resource://b-store")

	if sameProcess {
		x.bsrv = x.b
	}
	mw, err := x.bsrv.Middleware(caracal.VerifyTokens("resource://b-api"))
	require.NoError(t, err)
	require.NoError(t, st.SetUpstream("resource://b-api", mw(http.HandlerFunc(x.serveBAPI))))
	return x
}

// serveBAPI is B's resource server: /propagate calls b-store as the
// inbound agent, /spawn through a child it starts under that agent.
func (x *twoApps) serveBAPI(w http.ResponseWriter, r *http.Request) {
	got := inboundCall{}
	got.agent, _ = caracal.FromContext(r.Context())
	if h, err := x.bsrv.Headers(r.Context()); err == nil {
		got.bearerUse = tokenUse(h.Get("Authorization"))
	} else {
		got.bearerUse = err.Error()
	}
	ctx := r.Context()
	var child *caracal.Session
	if r.URL.Path == "/spawn" {
		var err error
		if child, err = x.bsrv.Spawn(ctx, caracal.WithLabels("worker")); err != nil {
			got.err = err
			x.inbound <- got
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		ctx = child.Context()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, x.st.UpstreamURL("resource://b-store")+"/item", nil)
	if err == nil {
		var resp *http.Response
		if resp, err = x.bsrv.HTTPClient(caracal.WithScopes("s:read")).Do(req); err == nil {
			got.status = resp.StatusCode
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			_ = json.Unmarshal(b, &got.echo)
		}
	}
	got.err = err
	if child != nil && err == nil {
		got.err = child.Close(r.Context())
	}
	x.inbound <- got
	w.WriteHeader(http.StatusOK)
}

// call sends a governed GET from ctx through c and returns the status and
// the decoded echo (when the upstream answered with one).
func (x *twoApps) call(t *testing.T, c *caracal.Client, ctx context.Context, url string, scope string) (int, caracaltest.EchoResponse, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	k := hcKey{c, scope}
	hc := x.hcs[k]
	if hc == nil {
		opts := []caracal.TransportOption{caracal.WithScopes(scope)}
		if x.prefetch > 0 {
			opts = append(opts, caracal.WithPrefetch(x.prefetch))
		}
		hc = c.HTTPClient(opts...)
		x.hcs[k] = hc
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, caracaltest.EchoResponse{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var echo caracaltest.EchoResponse
	_ = json.Unmarshal(b, &echo)
	return resp.StatusCode, echo, nil
}

// runTwoApps runs A and B as a deployment does while an operator acts on
// them: A's narrowed children call A's resource and A delegates to B's
// worker, whose calls reach B's resource server, which acts for the inbound
// agent both directly and through a child; meanwhile the signing key
// rotates, B's service is suspended and taken back, A revokes the
// delegation and the dispatcher is terminated. Each step gets what the
// docs promise, nothing refused reaches an upstream, and both applications
// close cleanly without logging a secret.
func runTwoApps(t *testing.T, x *twoApps, inMemory bool) {
	ctx := t.Context()
	st := x.st
	// A: a dispatcher with a narrowed reader and writer.
	disp, err := x.a.Spawn(ctx, caracal.WithLabels("dispatcher"))
	require.NoError(t, err)
	reader, err := x.a.Spawn(disp.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"a:read"}, "resource://a-home", caracal.Constraints{}, 10*time.Minute)))
	require.NoError(t, err)
	writer, err := x.a.Spawn(disp.Context(), caracal.WithLabels("writer"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"a:read", "a:write"}, "resource://a-home", caracal.Constraints{}, 10*time.Minute)))
	require.NoError(t, err)
	home := st.UpstreamURL("resource://a-home") + "/doc"

	status, echo, err := x.call(t, x.a, reader.Context(), home, "a:read")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, reader.ID(), echo.Claims.AgentSessionID)
	assert.Equal(t, reader.Agent().DelegationID(), echo.Claims.DelegationEdgeID)
	assert.Equal(t, "a:read", echo.Claims.Scope)
	upstream := st.Count("")
	_, _, err = x.call(t, x.a, reader.Context(), home, "a:write")
	assert.ErrorIs(t, err, caracal.ErrAccessDenied)
	assert.Equal(t, upstream, st.Count(""), "a refused scope reaches no upstream")
	status, echo, err = x.call(t, x.a, writer.Context(), home, "a:write")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, writer.ID(), echo.Claims.AgentSessionID)

	// B: a worker, and a service heartbeating in the background.
	lost := make(chan error, 1)
	svc, err := x.b.SpawnService(ctx, caracal.WithLabels("svc"), caracal.HeartbeatInterval(5*time.Second),
		caracal.OnLeaseLost(func(err error) { lost <- err }))
	require.NoError(t, err)
	worker, err := x.b.Spawn(ctx, caracal.WithLabels("worker"))
	require.NoError(t, err)

	// A hands B work on b-api and b-store.
	d, err := x.a.Delegate(disp.Context(), worker.ID(),
		caracal.Grant.Narrow([]string{"b:read", "s:read"}, "",
			caracal.Constraints{Resources: []string{"resource://b-api", "resource://b-store"}, MaxHops: 2}, 10*time.Minute),
		caracal.ToApplication("app-b"))
	require.NoError(t, err)
	wctx, err := x.b.AcceptDelegation(worker.Context(), d.ID)
	require.NoError(t, err)
	wa := mustAgent(t, wctx)
	assert.Equal(t, d.ID, wa.DelegationID())
	assert.Equal(t, worker.ID(), wa.SessionID())
	assert.Equal(t, "resource://b-api", d.Resource)
	assert.Equal(t, worker.ID(), d.TargetSessionID)

	api := st.UpstreamURL("resource://b-api")
	for _, path := range []string{"/propagate", "/spawn"} {
		status, _, err = x.call(t, x.b, wctx, api+path, "b:read")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status, path)
		in := <-x.inbound
		require.NotNil(t, in.agent, path)
		assert.Equal(t, worker.ID(), in.agent.SessionID(), path)
		assert.Equal(t, d.ID, in.agent.DelegationID(), path)
		assert.Equal(t, "app-b", in.agent.ApplicationID(), path)
		assert.Equal(t, []string{"b:read"}, in.agent.Scopes(), path)
		assert.Equal(t, 1, in.agent.Hop(), path)
		assert.Equal(t, "resource", in.bearerUse, "Headers passes on the received token")
		assert.Equal(t, wa.TraceID(), in.agent.TraceID(), path)
		require.NoError(t, in.err, path)
		require.Equal(t, http.StatusOK, in.status, path)
		assert.Equal(t, "s:read", in.echo.Claims.Scope, path)
		assert.Contains(t, in.echo.Traceparent, wa.TraceID(), path)
		if path == "/propagate" {
			assert.Equal(t, worker.ID(), in.echo.Claims.AgentSessionID)
			assert.Equal(t, d.ID, in.echo.Claims.DelegationEdgeID)
		} else {
			assert.NotEqual(t, worker.ID(), in.echo.Claims.AgentSessionID)
			e, ok := st.EdgeInfo(in.echo.Claims.DelegationEdgeID)
			require.True(t, ok)
			assert.Equal(t, d.ID, e.ParentEdge, "the child holds a copy of the inbound edge")
			assert.Equal(t, 2, in.echo.Claims.HopCount)
			ci, _ := st.SessionInfo(in.echo.Claims.AgentSessionID)
			assert.Equal(t, worker.ID(), ci.ParentID)
			assert.Equal(t, "terminated", ci.Status, "the handler closed its child")
		}
	}

	// The operator rotates the signing key. The server's first fetch was
	// for an unknown key id, so it takes the new one only 30 s later.
	st.RotateSigningKey()
	status, _, err = x.call(t, x.b, wctx, api+"/propagate", "b:read")
	require.NoError(t, err)
	if status == http.StatusOK { // over loopback, 30 s may have passed
		<-x.inbound
	} else {
		assert.Equal(t, http.StatusUnauthorized, status)
	}
	if inMemory {
		assert.Equal(t, http.StatusUnauthorized, status, "a new key within 30 s of the first fetch is refused")
		beats := st.Count(caracaltest.RouteHeartbeat)
		time.Sleep(31 * time.Second)
		assert.Greater(t, st.Count(caracaltest.RouteHeartbeat), beats, "the service renews in the background")
		status, _, err = x.call(t, x.b, wctx, api+"/propagate", "b:read")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)
		in := <-x.inbound
		assert.Equal(t, worker.ID(), in.agent.SessionID())
		assert.Equal(t, http.StatusOK, in.status)
	}

	// The operator suspends and resumes the service.
	require.NoError(t, st.Suspend(svc.ID()))
	if inMemory {
		<-svc.Done()
	} else {
		_, err = svc.Heartbeat(ctx)
		assert.ErrorIs(t, err, caracal.ErrSuspended)
	}
	assert.ErrorIs(t, svc.Err(), caracal.ErrSuspended)
	assert.ErrorIs(t, <-lost, caracal.ErrSuspended)
	n, err := x.b.Resume(ctx, svc.ID())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	svc2, err := x.b.AttachService(ctx, svc.ID(), caracal.HeartbeatInterval(5*time.Second))
	require.NoError(t, err)
	assert.Greater(t, svc2.Generation(), svc.Generation())
	assert.NoError(t, svc.Close(ctx), "a suspended handle's Close")

	// A revokes the delegation: B's worker is refused, nothing reaches b-api.
	require.NoError(t, x.a.RevokeDelegation(ctx, d.ID))
	e, ok := st.EdgeInfo(d.ID)
	require.True(t, ok)
	assert.Equal(t, "revoked", e.Status)
	si, _ := st.SessionInfo(worker.ID())
	assert.Equal(t, "terminated", si.Status, "the revoke ended the session that held it")
	upstream = st.Count("")
	status, _, err = x.call(t, x.b, wctx, api+"/propagate", "b:read")
	refused(t, status, err)
	assert.Equal(t, upstream, st.Count(""), "nothing reaches an upstream after the revoke")
	assert.NoError(t, worker.Close(ctx), "a session already gone counts as retired")

	// The operator terminates the dispatcher: its children go with it.
	require.NoError(t, st.Terminate(disp.ID()))
	for _, s := range []*caracal.Session{reader, writer} {
		si, _ := st.SessionInfo(s.ID())
		assert.Equal(t, "terminated", si.Status)
	}
	status, _, err = x.call(t, x.a, reader.Context(), home, "a:read")
	refused(t, status, err)
	assert.Equal(t, upstream, st.Count(""))
	_, err = x.a.Spawn(writer.Context(), caracal.WithLabels("writer"))
	assert.ErrorIs(t, err, caracal.ErrNotFound)
	assert.NoError(t, disp.Close(ctx))

	// Both applications shut down cleanly.
	require.NoError(t, svc2.Err(), "the taken-over service heartbeats on")
	assert.Empty(t, x.inbound, "no refused request reached b-api's handler")
	assert.NoError(t, x.a.Close(ctx))
	assert.NoError(t, x.b.Close(ctx))
	assert.NoError(t, x.bsrv.Close(ctx))
	assert.ErrorIs(t, svc2.Err(), caracal.ErrSessionClosed)

	for _, l := range []*logRecorder{x.logA, x.logB} {
		for _, r := range l.all() {
			var sb strings.Builder
			sb.WriteString(r.Message)
			r.Attrs(func(a slog.Attr) bool { sb.WriteString(" " + a.String()); return true })
			line := sb.String()
			if r.Level >= slog.LevelWarn {
				assert.True(t, l == x.logB && strings.Contains(line, "suspended"), "only B's suspension is worth a warning: %s", line)
			}
			for _, s := range x.secrets {
				assert.NotContains(t, line, s)
			}
			assert.NotContains(t, line, "eyJ", "no token in the log")
		}
	}
}

func TestTwoApplicationsScenarioLoopback(t *testing.T) {
	for _, same := range []bool{false, true} {
		t.Run(map[bool]string{false: "server apart", true: "server in B's client"}[same], func(t *testing.T) {
			runTwoApps(t, newTwoApps(t, same), false)
		})
	}
}

func TestTwoApplicationsScenarioPrefetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		x := newTwoApps(t, false, caracaltest.InMemory())
		x.prefetch = 2
		runTwoApps(t, x, true)
	})
}

func TestTwoApplicationsScenarioInMemory(t *testing.T) {
	for _, same := range []bool{false, true} {
		t.Run(map[bool]string{false: "server apart", true: "server in B's client"}[same], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				runTwoApps(t, newTwoApps(t, same, caracaltest.InMemory()), true)
			})
		})
	}
}

// refused checks that a governed call was refused: by the STS when it
// minted, or by the Gateway when it presented a pooled mandate.
func refused(t *testing.T, status int, err error) {
	t.Helper()
	if err != nil {
		assert.ErrorIs(t, err, caracal.ErrAccessDenied)
		return
	}
	assert.Contains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, status)
}
