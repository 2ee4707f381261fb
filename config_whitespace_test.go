package caracal

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A variable mounted from a Kubernetes secret or config map often ends in a
// newline. Values are trimmed, CARACAL_ENV included: "production\n" turns on
// production gating as "production" does, instead of silently leaving it off
// (while CARACAL_ALLOW_INSECURE_CONFIG_URLS="true\n" still relaxes it).
func TestLoadConfigProductionTrimmed(t *testing.T) {
	for _, v := range []string{"production\n", " production", "production\r\n"} {
		e := baseEnv().with("CARACAL_ENV", v,
			"CARACAL_STS_URL", "https://sts.example",
			"CARACAL_COORDINATOR_URL", "http://coord.example",
			"CARACAL_GATEWAY_URL", "https://gw.example")
		_, err := loadEnv(t, e)
		require.Error(t, err, "CARACAL_ENV=%q", v)
		assert.Contains(t, err.Error(), "caracal: CARACAL_COORDINATOR_URL: http://coord.example is not https")

		cfg, err := loadEnv(t, e.with("CARACAL_COORDINATOR_URL", "https://coord.example"))
		require.NoError(t, err)
		assert.True(t, cfg.Production, "CARACAL_ENV=%q", v)
	}
}
