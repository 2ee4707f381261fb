package caracal

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Without WithLogger nothing is logged, not even to the process's default
// slog logger (or the log package, which slog.SetDefault also redirects):
// the warnings a logger would get (unknown profile keys, a CARACAL_ENV that
// is not "production", a middleware without a verifier) go nowhere.
func TestNilLoggerLogsNothing(t *testing.T) {
	var out bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(prev) })

	path := writeFile(t, t.TempDir(), "caracal.toml", "zone_id = \"z\"\napplication_id = \"a\"\napp_client_secret = \"x\"\nzone_url = \"https://old.example\"\n", 0o600)
	c, err := New(WithLookupEnv(env{"CARACAL_CONFIG": path, "CARACAL_ENV": "prod", "CARACAL_ZONE_URL": "https://old.example"}.lookup))
	require.NoError(t, err)
	defer c.Close(context.Background())
	_, err = c.Middleware()
	require.NoError(t, err)
	assert.Empty(t, out.String())
}
