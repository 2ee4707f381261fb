package caracal_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// Headers of a session another client (of another application) spawned
// would pair this client's lifecycle token with that session's baggage: a
// bearer of one application speaking for another's session. It is refused.
func TestHeadersRefusesAnotherApplicationsSession(t *testing.T) {
	_, c, oc := twoApplications(t)

	s, err := oc.Spawn(t.Context())
	require.NoError(t, err)
	defer s.Close(context.Background())
	_, err = c.Headers(s.Context())
	require.ErrorIs(t, err, caracal.ErrInvalidRequest)
	assert.Contains(t, err.Error(), "app-other")

	h, err := oc.Headers(s.Context())
	require.NoError(t, err, "the session's own client gives headers")
	assert.Contains(t, h.Get("Baggage"), s.ID())
}

// The transport refuses such a session too, before any mint: the mandate
// would be minted with this client's lifecycle token.
func TestTransportRefusesAnotherApplicationsSession(t *testing.T) {
	st, c, oc := twoApplications(t)
	root, err := oc.Spawn(t.Context())
	require.NoError(t, err)
	defer root.Close(context.Background())
	reader, err := oc.Spawn(root.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"notes:read"}, "resource://notes", caracal.Constraints{}, time.Minute)))
	require.NoError(t, err)

	st.ResetRecord()
	req, err := http.NewRequestWithContext(reader.Context(), http.MethodGet, st.UpstreamURL("resource://notes")+"/n/1", nil)
	require.NoError(t, err)
	_, err = c.HTTPClient(caracal.WithScopes("notes:read")).Do(req)
	require.ErrorIs(t, err, caracal.ErrInvalidRequest)
	assert.Contains(t, err.Error(), "app-other")
	assert.Empty(t, st.Requests(), "nothing was sent")
}

// A session of the same application in another zone is refused the same
// way, by Headers and by the transport: this client's lifecycle token is
// for its own zone.
func TestHeadersAndTransportRefuseAnotherZonesSession(t *testing.T) {
	st := caracaltest.Start(t)
	c, err := st.NewClient()
	require.NoError(t, err)
	defer c.Close(context.Background())
	other := caracaltest.Start(t, caracaltest.WithZone("zone-other"))
	oc, err := other.NewClient()
	require.NoError(t, err)
	defer oc.Close(context.Background())
	require.Equal(t, st.Config().ApplicationID, other.Config().ApplicationID)

	s, err := oc.Spawn(t.Context())
	require.NoError(t, err)
	defer s.Close(context.Background())
	_, err = c.Headers(s.Context())
	require.ErrorIs(t, err, caracal.ErrInvalidRequest)
	assert.Contains(t, err.Error(), "zone-other")

	st.ResetRecord()
	req, err := http.NewRequestWithContext(s.Context(), http.MethodGet, st.UpstreamURL(tickets)+"/tickets/1", nil)
	require.NoError(t, err)
	_, err = c.HTTPClient(caracal.WithScopes("tickets:read")).Do(req)
	require.ErrorIs(t, err, caracal.ErrInvalidRequest)
	assert.Contains(t, err.Error(), "zone-other")
	assert.Empty(t, st.Requests(), "nothing was sent")
}

// twoApplications starts a stack with two applications, app-test and
// app-other (granted resource://notes), and returns a client of each.
func twoApplications(t *testing.T, opts ...caracaltest.Option) (st *caracaltest.Stack, c, oc *caracal.Client) {
	t.Helper()
	other := caracaltest.App{ID: "app-other", Secret: "other-secret"}
	st = caracaltest.Start(t, append(opts, caracaltest.WithApplication(caracaltest.App{ID: "app-test"}), caracaltest.WithApplication(other),
		caracaltest.WithResource(caracaltest.Resource{Identifier: "resource://notes", Scopes: []string{"notes:read"}}),
		caracaltest.WithGrant("resource://notes", other.ID, map[string][]string{"reader": {"notes:read"}}))...)
	c, err := st.NewClient()
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	cfg := st.Config()
	cfg.ApplicationID, cfg.ClientSecret = other.ID, other.Secret
	cfg.Resources, cfg.Bindings = []string{"resource://notes"}, nil
	oc, err = caracal.NewFromConfig(cfg, st.ClientOptions()...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = oc.Close(context.Background()) })
	return st, c, oc
}
