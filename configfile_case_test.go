package caracal

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Profile keys are case-sensitive, as in TOML and in the other readers of a
// shared profile: a key that differs from a known one only in case is an
// unknown key, never the known one's value. The TOML package's struct
// decoding matched such keys too, and when both spellings were present it
// picked one at random (map order).
func TestLoadConfigProfileKeysAreCaseSensitive(t *testing.T) {
	dir := t.TempDir()
	both := writeFile(t, dir, "both.toml", `zone_id = "zone-exact"
ZONE_ID = "zone-upper"
application_id = "a"
app_client_secret = "x"
`, 0o600)
	for range 50 {
		cfg, err := loadEnv(t, env{"CARACAL_CONFIG": both})
		require.NoError(t, err)
		require.Equal(t, "zone-exact", cfg.ZoneID)
	}
	_, err := loadEnv(t, env{"CARACAL_CONFIG": both}, WithStrictConfig())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "caracal: "+both+": unknown keys ZONE_ID ")

	// Alone, a mis-cased key sets nothing and is reported as unknown.
	only := writeFile(t, dir, "only.toml", `Zone_Id = "zone-mixed"
application_id = "a"
app_client_secret = "x"

[[credentials]]
resource = "resource://r"
Upstream_Prefix = "http://r.internal"
`, 0o600)
	var logs bytes.Buffer
	cfg, err := loadEnv(t, env{"CARACAL_CONFIG": only, "CARACAL_ZONE_ID": "zone-env"}, WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	require.NoError(t, err)
	assert.Equal(t, "zone-env", cfg.ZoneID)
	assert.Equal(t, []string{"resource://r"}, cfg.Resources)
	assert.Empty(t, cfg.Bindings, "a mis-cased upstream_prefix makes no binding")
	assert.Contains(t, logs.String(), `"keys":["Zone_Id","credentials.Upstream_Prefix"]`)

	_, err = loadEnv(t, env{"CARACAL_CONFIG": only})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "zone_id is not set in "+only)
}

// Entries are decoded key by key; one that is not a table is still refused,
// naming its key and line.
func TestLoadConfigProfileCredentialNotATable(t *testing.T) {
	path := writeFile(t, t.TempDir(), "caracal.toml", "zone_id = \"z\"\ncredentials = [\"resource://r\"]\n", 0o600)
	_, err := loadEnv(t, baseEnv().with("CARACAL_CONFIG", path))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "caracal: "+path+": line 2: credentials must be an array of tables")
}
