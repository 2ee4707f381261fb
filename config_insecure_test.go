package caracal

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// CARACAL_ALLOW_INSECURE_CONFIG_URLS letting a single plain-http URL
// through in production warns about it, as it does for several.
func TestLoadConfigWarnsOfASingleInsecureURL(t *testing.T) {
	for _, name := range []string{"CARACAL_STS_URL", "CARACAL_COORDINATOR_URL", "CARACAL_GATEWAY_URL"} {
		e := baseEnv().with("CARACAL_ENV", "production",
			"CARACAL_STS_URL", "https://sts.example", "CARACAL_COORDINATOR_URL", "https://coord.example", "CARACAL_GATEWAY_URL", "https://gw.example",
			name, "http://plain.example", "CARACAL_ALLOW_INSECURE_CONFIG_URLS", "true")
		var logs bytes.Buffer
		_, err := loadEnv(t, e, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		require.NoError(t, err, name)
		assert.Equal(t, 1, strings.Count(logs.String(), "level=WARN"), "%s: %s", name, logs.String())
		assert.Contains(t, logs.String(), name)
	}
}
