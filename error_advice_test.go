package caracal_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A refused start says which call failed, not only the route it reached,
// and keeps the server's answer for errors.As.
func TestStartErrorNamesTheCall(t *testing.T) {
	st, c := newStack(t)
	for _, tc := range []struct {
		route string
		spawn func() error
		want  string
	}{
		{caracaltest.RouteStart, func() error { _, err := c.Spawn(t.Context()); return err }, "caracal: starting a session: "},
		{caracaltest.RouteStart, func() error { _, err := c.SpawnService(t.Context()); return err }, "caracal: starting a service: "},
	} {
		st.Inject(tc.route, caracaltest.Fault{Status: http.StatusForbidden, Times: 1})
		err := tc.spawn()
		var e *caracal.Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, "missing_scope", e.Code)
		assert.NotEmpty(t, e.RequestID)
		assert.ErrorIs(t, err, caracal.ErrAccessDenied)
		assert.Contains(t, err.Error(), tc.want)
	}
}

// A refused application secret (or zone) says what to check, wherever the
// exchange that met it ran: the sentinel's advice is in the message, not
// only behind errors.Is.
func TestCredentialRefusalSaysWhatToCheck(t *testing.T) {
	for _, f := range []caracaltest.Fault{
		{Status: http.StatusUnauthorized, Code: "access_denied", Description: "invalid client credentials"},
		{Status: http.StatusForbidden, Code: "zone_invalid", Description: "application app-x is registered in zone b, not a"},
	} {
		st, c := newStack(t)
		st.Inject(caracaltest.RouteToken, f)
		_, err := c.Spawn(t.Context())
		var e *caracal.Error
		require.ErrorAs(t, err, &e)
		assert.Equal(t, "sts", e.Service)
		assert.Equal(t, f.Status, e.StatusCode)
		assert.NotEmpty(t, e.RequestID)
		assert.ErrorIs(t, err, caracal.ErrCredentials)
		assert.Contains(t, err.Error(), "check the client secret")
		assert.NotContains(t, err.Error(), st.Application().Secret)

		_, err = c.Headers(t.Context(), caracal.AsApplication())
		assert.ErrorIs(t, err, caracal.ErrCredentials)
		assert.Contains(t, err.Error(), "check the client secret")
	}
}

// A bootstrap token the Coordinator refuses (here an opaque one it cannot
// verify) is never refreshed, so the 401 invalid_token is final: the error
// says the configured bootstrap token was refused and what one must be,
// without printing it, and keeps the Coordinator's answer.
func TestBootstrapTokenRefusedSaysWhatItMustBe(t *testing.T) {
	const token = "opaque-bootstrap-token-4711"
	st := caracaltest.Start(t)
	cfg := st.Config()
	cfg.ClientSecret, cfg.BootstrapToken = "", token
	c, err := caracal.NewFromConfig(cfg, caracal.WithHTTPClient(st.HTTPClient()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(t.Context()) })

	_, err = c.Spawn(t.Context())
	var e *caracal.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "coordinator", e.Service)
	assert.Equal(t, http.StatusUnauthorized, e.StatusCode)
	assert.Equal(t, "invalid_token", e.Code)
	assert.NotEmpty(t, e.RequestID)
	assert.ErrorIs(t, err, caracal.ErrUnauthorized)
	assert.ErrorContains(t, err, "the Coordinator refused the configured bootstrap token")
	assert.ErrorContains(t, err, "use=session")
	assert.ErrorContains(t, err, "agent:lifecycle")
	assert.NotContains(t, err.Error(), token)
}

// The other refusals of a bootstrap token say what they mean too: its
// authority ended (401 identity_revoked), or it lacks the lifecycle scope
// (403 missing_scope). The token is never printed.
func TestBootstrapTokenRevokedOrUnscopedSaysWhy(t *testing.T) {
	const token = "opaque-bootstrap-token-4711"
	for _, tc := range []struct {
		status     int
		code, want string
	}{
		{http.StatusUnauthorized, "identity_revoked", "no longer accepts the configured bootstrap token"},
		{http.StatusForbidden, "missing_scope", "lacks the agent:lifecycle scope"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			st := caracaltest.Start(t)
			cfg := st.Config()
			cfg.ClientSecret, cfg.BootstrapToken = "", token
			c, err := caracal.NewFromConfig(cfg, caracal.WithHTTPClient(st.HTTPClient()))
			require.NoError(t, err)
			t.Cleanup(func() { _ = c.Close(t.Context()) })
			st.Inject(caracaltest.RouteStart, caracaltest.Fault{Status: tc.status, Code: tc.code})

			_, err = c.Spawn(t.Context())
			var e *caracal.Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tc.status, e.StatusCode)
			assert.Equal(t, tc.code, e.Code)
			assert.ErrorContains(t, err, tc.want)
			assert.NotContains(t, err.Error(), token)
		})
	}
}
