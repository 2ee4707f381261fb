package caracal_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A lifecycle exchange answered with a token of another application (here
// one the STS minted for app-b, whose resource the edit asks for with
// app-b's secret) is refused as an invalid answer: cached, it would act on
// the Coordinator as that application, and Headers would hand it to other
// services as this application's credential.
func TestLifecycleExchangeAnsweredForAnotherApplicationIsNotUsed(t *testing.T) {
	const docs = "resource://b-docs"
	st := caracaltest.Start(t,
		caracaltest.WithApplication(caracaltest.App{ID: "app-b", Secret: "b-secret"}),
		caracaltest.WithResource(caracaltest.Resource{Identifier: docs, Scopes: []string{"docs:read"}}),
		caracaltest.WithGrant(docs, "app-b", map[string][]string{"reader": {"docs:read"}}))
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: editMints(base, func(form url.Values) {
		if !form.Has("agent_session_id") {
			form.Set("application_id", "app-b")
			form.Set("client_secret", "b-secret")
			form["resource"] = []string{docs}
		}
	})}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })

	h, err := c.Headers(t.Context(), caracal.AsApplication())
	require.ErrorIs(t, err, caracal.ErrUnavailable, "headers %v", h)
	_, err = c.Spawn(t.Context())
	require.ErrorIs(t, err, caracal.ErrUnavailable)
}
