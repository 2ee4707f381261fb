package caracal

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An option shadows its key's lower sources even when its value is refused:
// the load fails with the option's error alone, and the environment and
// profile values it replaces are neither read nor checked, as they are not
// when the option is valid.
func TestLoadConfigRefusedOptionStillShadows(t *testing.T) {
	dir := t.TempDir()
	loose := writeFile(t, dir, "loose-secret", testSecret, 0o644)
	missing := filepath.Join(dir, "missing")
	conflicting := env{
		"CARACAL_ZONE_ID": "z", "CARACAL_APPLICATION_ID": "a",
		"CARACAL_BOOTSTRAP_TOKEN": "opaque-token", "CARACAL_APP_CLIENT_SECRET": testSecret,
	}
	prod := env{"CARACAL_ENV": "production", "CARACAL_APP_CLIENT_SECRET": testSecret,
		"CARACAL_COORDINATOR_URL": "https://coord.example", "CARACAL_GATEWAY_URL": "https://gw.example"}
	cases := []struct {
		name string
		env  env
		opts []Option
		want string
	}{
		{"secret file over conflicting credentials", conflicting, []Option{WithClientSecretFile(missing)},
			"caracal: WithClientSecretFile: secret file " + missing + " does not exist"},
		{"secret file over a loose secret file", env{"CARACAL_ZONE_ID": "z", "CARACAL_APPLICATION_ID": "a", "CARACAL_APP_CLIENT_SECRET_FILE": loose},
			[]Option{WithClientSecretFile(missing)}, "caracal: WithClientSecretFile: secret file " + missing + " does not exist"},
		{"empty token over conflicting credentials", conflicting, []Option{WithBootstrapToken(" ")}, "caracal: WithBootstrapToken: the token is empty"},
		{"empty secret over no credential", env{"CARACAL_ZONE_ID": "z", "CARACAL_APPLICATION_ID": "a"}, []Option{WithClientSecret("")}, "caracal: WithClientSecret: the secret is empty"},
		{"empty zone over no zone", env{"CARACAL_APPLICATION_ID": "a", "CARACAL_APP_CLIENT_SECRET": testSecret}, []Option{WithZone(" ")}, "caracal: WithZone: the zone id is empty"},
		{"empty application over no application", env{"CARACAL_ZONE_ID": "z", "CARACAL_APP_CLIENT_SECRET": testSecret}, []Option{WithApplication("")}, "caracal: WithApplication: the application id is empty"},
		{"empty URL over production", prod.with("CARACAL_ZONE_ID", "z", "CARACAL_APPLICATION_ID", "a"), []Option{WithSTSURL("")}, "caracal: WithSTSURL: the URL is empty"},
		{"bad TTL over a bad variable", baseEnv().with("CARACAL_DEFAULT_TTL_SECONDS", "x"), []Option{WithDefaultTTL(-1)}, "caracal: WithDefaultTTL is -1ns"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadEnv(t, tc.env, tc.opts...)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), tc.want), err.Error())
			assert.NotContains(t, err.Error(), "\n", "only the option's error")
		})
	}
}
