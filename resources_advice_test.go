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
