package caracal_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// Lifecycle tokens as the STS mints them (audience: the issuer) reach a
// resource server directly, with Headers, from the applications it accepts.
func TestMiddlewareAcceptsRealSessionTokens(t *testing.T) {
	other := caracaltest.App{ID: "app-other", Secret: "other-secret"}
	st := caracaltest.Start(t, caracaltest.WithApplication(caracaltest.App{ID: "app-test"}), caracaltest.WithApplication(other),
		caracaltest.WithResource(caracaltest.Resource{Identifier: "resource://notes", Scopes: []string{"notes:read"}}),
		caracaltest.WithGrant("resource://notes", other.ID, map[string][]string{"reader": {"notes:read"}}))
	c, _ := newClient(t, st)
	cfg := st.Config()
	cfg.ApplicationID, cfg.ClientSecret = other.ID, other.Secret
	cfg.Resources, cfg.Bindings = []string{"resource://notes"}, nil
	oc, err := caracal.NewFromConfig(cfg)
	require.NoError(t, err)
	defer oc.Close(context.Background())

	call := func(t *testing.T, mw func(http.Handler) http.Handler, from *caracal.Client) (*httptest.ResponseRecorder, *caracal.Agent) {
		s, err := from.Spawn(t.Context())
		require.NoError(t, err)
		defer s.Close(context.Background())
		hdr, err := from.Headers(s.Context())
		require.NoError(t, err)
		var bound *caracal.Agent
		h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			bound, _ = caracal.FromContext(r.Context())
			w.WriteHeader(http.StatusNoContent)
		}))
		req := httptest.NewRequest(http.MethodGet, "/tickets/1", nil)
		req.Header = hdr
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec, bound
	}
	errCode := func(t *testing.T, rec *httptest.ResponseRecorder) string {
		var body struct{ Error, ErrorDescription string }
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &struct {
			Error            *string `json:"error"`
			ErrorDescription *string `json:"error_description"`
		}{&body.Error, &body.ErrorDescription}))
		return body.Error + ": " + body.ErrorDescription
	}

	t.Run("refused by default", func(t *testing.T) {
		mw, err := c.Middleware(caracal.VerifyTokens("resource://tickets"))
		require.NoError(t, err)
		rec, _ := call(t, mw, c)
		assert.Equal(t, http.StatusUnauthorized, rec.Code)
		assert.Equal(t, "invalid_token: token class session is not accepted here", errCode(t, rec))
	})
	t.Run("own application", func(t *testing.T) {
		mw, err := c.Middleware(caracal.VerifyTokens("resource://tickets", caracal.AcceptSessionTokens()))
		require.NoError(t, err)
		rec, a := call(t, mw, c)
		require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
		require.NotNil(t, a)
		assert.Equal(t, "app-test", a.ApplicationID())
		assert.Equal(t, "zone-test", a.ZoneID())
		assert.Empty(t, a.SessionID(), "a lifecycle token names no session")

		rec, _ = call(t, mw, oc)
		assert.Equal(t, http.StatusUnauthorized, rec.Code)
		assert.Equal(t, "invalid_token: session tokens of application app-other are not accepted here", errCode(t, rec))
	})
	t.Run("listed applications", func(t *testing.T) {
		mw, err := c.Middleware(caracal.VerifyTokens("resource://tickets", caracal.AcceptSessionTokens("app-other")))
		require.NoError(t, err)
		rec, a := call(t, mw, oc)
		require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
		assert.Equal(t, "app-other", a.ApplicationID())
		rec, _ = call(t, mw, c)
		assert.Equal(t, http.StatusUnauthorized, rec.Code, "only the listed applications")
	})
}

// boundBehindGateway makes mw the upstream of resource://tickets on st,
// sends it a governed GET from a child of c narrowed to tickets:read, and
// returns the child, its parent and the agent mw bound for the request.
func boundBehindGateway(t *testing.T, st *caracaltest.Stack, c *caracal.Client, mw func(http.Handler) http.Handler) (root, reader *caracal.Session, bound *caracal.Agent) {
	t.Helper()
	agents := make(chan *caracal.Agent, 1)
	require.NoError(t, st.SetUpstream("resource://tickets", mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, _ := caracal.FromContext(r.Context())
		agents <- a
	}))))
	root, reader = narrowReader(t, c, caracal.Constraints{}, "reader")
	hc := c.HTTPClient(caracal.WithScopes("tickets:read"))
	req, err := http.NewRequestWithContext(reader.Context(), http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets/1", nil)
	require.NoError(t, err)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	bound = <-agents
	require.NotNil(t, bound)
	return root, reader, bound
}

// Behind the Gateway the Caracal baggage is gone: trusted propagation binds
// the trace and the configured zone and application, no agent.
func TestTrustedPropagationBehindTheGateway(t *testing.T) {
	st, c := newStack(t)
	mw, err := c.Middleware(caracal.TrustedPropagation())
	require.NoError(t, err)
	_, reader, a := boundBehindGateway(t, st, c, mw)
	assert.Empty(t, a.SessionID())
	assert.Empty(t, a.DelegationID())
	assert.Equal(t, "zone-test", a.ZoneID())
	assert.Equal(t, reader.Agent().TraceID(), a.TraceID(), "the trace context still arrives")
}
