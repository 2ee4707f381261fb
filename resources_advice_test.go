package caracal_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A client configured with no resource at all cannot get a lifecycle
// token; the error names what fixes that for either constructor: a client
// from NewFromConfig reads no environment variable, so Config.Resources
// is what it needs.
func TestNoResourcesErrorNamesTheConfigField(t *testing.T) {
	st := caracaltest.Start(t)
	cfg := st.Config()
	cfg.Resources, cfg.Bindings = nil, nil
	c, err := caracal.NewFromConfig(cfg, caracal.WithHTTPClient(&http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(t.Context()) })
	_, err = c.Spawn(t.Context())
	require.Error(t, err)
	assert.ErrorContains(t, err, "Config.Resources")
	assert.ErrorContains(t, err, "WithResources")
	assert.Zero(t, st.Count(caracaltest.RouteToken), "refused before any call")
}

// A lifecycle token is issued only for resources the zone's policy grants
// to the application. When it grants none of those configured, the STS
// answers "policy denied", which says nothing of the configuration that
// caused it; the error names the resources asked for, the application,
// and where they are configured, and keeps the STS's answer.
func TestLifecycleRefusedForUngrantedResourcesNamesThem(t *testing.T) {
	st := caracaltest.Start(t, caracaltest.WithApplication(caracaltest.App{ID: "app-test"}),
		caracaltest.WithApplication(caracaltest.App{ID: "app-two", Secret: "cs_two"}))
	cfg := st.Config()
	cfg.ApplicationID, cfg.ClientSecret = "app-two", "cs_two"
	c, err := caracal.NewFromConfig(cfg, caracal.WithHTTPClient(&http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(t.Context()) })

	_, err = c.Spawn(t.Context())
	var e *caracal.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, http.StatusForbidden, e.StatusCode)
	assert.ErrorIs(t, err, caracal.ErrAccessDenied)
	assert.ErrorContains(t, err, "resource://tickets")
	assert.ErrorContains(t, err, "app-two")
	assert.ErrorContains(t, err, "Config.Resources")
	assert.NotContains(t, err.Error(), "cs_two")
}

// A lifecycle refusal for another reason (a restriction on the
// application, no active policy, the mint budget) is not a matter of the
// resources configured: the error does not send the caller there.
func TestLifecycleRefusedForOtherReasonsGivesNoResourceAdvice(t *testing.T) {
	for _, desc := range []string{"policy denied (restriction_active)", "policy denied (no_active_policy_set)", "policy denied"} {
		st := caracaltest.Start(t)
		st.Inject(caracaltest.RouteToken, caracaltest.Fault{Status: http.StatusForbidden, Code: "access_denied", Description: desc})
		c, err := caracal.NewFromConfig(st.Config(), caracal.WithHTTPClient(st.HTTPClient()))
		require.NoError(t, err)
		_, err = c.Spawn(t.Context())
		require.ErrorIs(t, err, caracal.ErrAccessDenied, desc)
		assert.ErrorContains(t, err, desc)
		assert.NotContains(t, err.Error(), "Config.Resources", desc)
		require.NoError(t, c.Close(t.Context()))
	}
}

// Either refusal that means the policy grants none of the resources asked
// for (no rule matched them, or one matched without granting them) sends
// the caller to the configured resources.
func TestLifecycleRefusedForUngrantedResourcesAdvisesForEitherReason(t *testing.T) {
	for _, desc := range []string{"policy denied (no_rule_matched)", "policy denied (resource_not_granted)"} {
		st := caracaltest.Start(t)
		st.Inject(caracaltest.RouteToken, caracaltest.Fault{Status: http.StatusForbidden, Code: "access_denied", Description: desc})
		c, err := caracal.NewFromConfig(st.Config(), caracal.WithHTTPClient(st.HTTPClient()))
		require.NoError(t, err)
		_, err = c.Spawn(t.Context())
		require.ErrorIs(t, err, caracal.ErrAccessDenied, desc)
		assert.ErrorContains(t, err, desc)
		assert.ErrorContains(t, err, "Config.Resources", desc)
		require.NoError(t, c.Close(t.Context()))
	}
}
