package caracal_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// The methods of a zero Client that take no context neither panic: Config
// returns the zero configuration, printing it shows that configuration,
// and GatewayRequest says how to make a client.
func TestZeroClientConfigPrintAndGatewayRequest(t *testing.T) {
	c := new(caracal.Client)
	var cfg caracal.Config
	require.NotPanics(t, func() { cfg = c.Config() })
	assert.Equal(t, caracal.Config{}, cfg)
	for _, verb := range []string{"%v", "%s", "%+v", "%#v"} {
		assert.NotContains(t, fmt.Sprintf(verb, c), "PANIC", verb)
	}
	var err error
	require.NotPanics(t, func() { _, err = c.GatewayRequest(t.Context(), "GET", "tickets", "/v1", nil) })
	require.ErrorIs(t, err, caracal.ErrInvalidRequest)
	assert.Contains(t, err.Error(), "caracal.New")
}
