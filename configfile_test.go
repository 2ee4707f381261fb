package caracal

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadConfigProfileEveryKey(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "secret", testSecret+"\n", 0o600)
	// A relative app_client_secret_file is relative to the profile.
	path := writeFile(t, dir, "caracal.toml", fullProfile("secret"), 0o600)
	cfg, err := loadEnv(t, env{"CARACAL_CONFIG": path})
	require.NoError(t, err)
	assert.Equal(t, Config{
		ZoneID:         "zone-file",
		ApplicationID:  "app-file",
		ClientSecret:   testSecret,
		STSURL:         "https://sts.file.example",
		CoordinatorURL: "https://coord.file.example",
		GatewayURL:     "https://gw.file.example",
		Resources:      []string{"resource://tickets", "resource://audit", "resource://search"},
		Bindings: []ResourceBinding{
			{"resource://search", "http://search.internal/v1"},
			{"resource://tickets", "http://tickets.internal"},
		},
		DefaultTTL: 600 * time.Second,
		Profile:    path,
	}, cfg)
}

func TestLoadConfigProfileInlineSecret(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "caracal.toml", `zone_id = "z"
application_id = "a"
app_client_secret = "`+testSecret+`"
`, 0o600)
	cfg, err := loadEnv(t, env{}, WithConfigFile(path))
	require.NoError(t, err)
	assert.Equal(t, testSecret, cfg.ClientSecret)
	assert.Equal(t, path, cfg.Profile)
}

// v1 reads a profile only where CARACAL_CONFIG (or WithConfigFile) names
// it (PROTOCOL §2.1): a caracal.toml in $CARACAL_CONFIG_HOME, in
// $XDG_CONFIG_HOME/caracal or in the OS user config directory is not read,
// even one that could not be loaded, and CARACAL_CONFIG_HOME gets the
// warning of the other variables v1 no longer reads.
func TestLoadConfigReadsNoDefaultProfile(t *testing.T) {
	root := t.TempDir()
	profile := "zone_id = \"zone-file\"\napplication_id = \"app-file\"\napp_client_secret = \"x-secret\"\ngateway_url = \"http://gateway.file:8081\"\n"
	writeFile(t, root, "cch/caracal.toml", profile, 0o600)
	writeFile(t, root, "xdg/caracal/caracal.toml", profile, 0o666)
	writeFile(t, root, "home/.config/caracal/caracal.toml", profile, 0o600)
	writeFile(t, root, "home/Library/Application Support/Caracal/caracal.toml", profile, 0o600)
	writeFile(t, root, "appdata/Caracal/caracal.toml", profile, 0o600)
	defaults := env{
		"CARACAL_CONFIG_HOME": filepath.Join(root, "cch"),
		"XDG_CONFIG_HOME":     filepath.Join(root, "xdg"),
		"HOME":                filepath.Join(root, "home"),
		"APPDATA":             filepath.Join(root, "appdata"),
	}

	var logs bytes.Buffer
	cfg, err := loadEnv(t, baseEnv().with(flatten(defaults)...), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)
	assert.Empty(t, cfg.Profile)
	assert.Equal(t, "zone-env", cfg.ZoneID)
	assert.Equal(t, "http://localhost:8081", cfg.GatewayURL)
	assert.Contains(t, logs.String(), "CARACAL_CONFIG_HOME is no longer read; use CARACAL_CONFIG")

	e := env{}.with(flatten(defaults)...)
	_, err = loadEnv(t, e)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "caracal: CARACAL_ZONE_ID is not set (set it, or set CARACAL_CONFIG to a profile)")

	cfg, err = loadEnv(t, e.with("CARACAL_CONFIG", filepath.Join(root, "cch", "caracal.toml")))
	require.NoError(t, err)
	assert.Equal(t, "zone-file", cfg.ZoneID)
}

// flatten turns e into key, value, key, value, ... for env.with.
func flatten(e env) []string {
	var kv []string
	for k, v := range e {
		kv = append(kv, k, v)
	}
	return kv
}

func TestLoadConfigWithConfigFileBeatsCARACAL_CONFIG(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.toml", "zone_id = \"zone-a\"\napplication_id = \"x\"\napp_client_secret = \"y\"\n", 0o600)
	b := writeFile(t, dir, "b.toml", "zone_id = \"zone-b\"\napplication_id = \"x\"\napp_client_secret = \"y\"\n", 0o600)
	cfg, err := loadEnv(t, env{"CARACAL_CONFIG": a}, WithConfigFile(b))
	require.NoError(t, err)
	assert.Equal(t, "zone-b", cfg.ZoneID)
	assert.Equal(t, b, cfg.Profile)
}

// WithConfigFile("") (say, from an unset variable) names no file: it is
// refused rather than read as "no option", which would load the profile
// CARACAL_CONFIG names instead.
func TestLoadConfigWithConfigFileEmpty(t *testing.T) {
	path := writeFile(t, t.TempDir(), "caracal.toml", "zone_id = \"zone-default\"\napplication_id = \"x\"\napp_client_secret = \"y\"\n", 0o600)
	for _, empty := range []string{"", "  "} {
		_, err := loadEnv(t, env{"CARACAL_CONFIG": path}, WithConfigFile(empty))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "caracal: WithConfigFile: the path is empty")
	}
}

func TestLoadConfigNamedProfileMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.toml")
	_, err := loadEnv(t, baseEnv().with("CARACAL_CONFIG", missing))
	require.Error(t, err)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.Contains(t, err.Error(), "caracal: CARACAL_CONFIG names "+missing+", which does not exist")

	_, err = loadEnv(t, baseEnv(), WithConfigFile(missing))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "caracal: WithConfigFile names "+missing)

	// With nothing else set, the unset keys point back at the profile.
	_, err = loadEnv(t, env{"CARACAL_CONFIG": missing})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "caracal: CARACAL_ZONE_ID is not set, and the profile could not be loaded (see above)")
	assert.Contains(t, err.Error(), "; the profile could not be loaded)")
	assert.NotContains(t, err.Error(), "set CARACAL_CONFIG to a profile")
}

func TestLoadConfigBadTOML(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, content, want string
	}{
		{"unquoted secret", "zone_id = \"z\"\n\napp_client_secret = " + testSecret + "\n", "line 3"},
		{"unterminated", "zone_id = \"z\"\napp_client_secret = \"" + testSecret + "\n", "line 2"},
		{"wrong type", "zone_id = 5\n", "line 1"},
		{"duplicate key", "zone_id = \"a\"\nzone_id = \"b\"\n", "line 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, dir, tc.name+".toml", tc.content, 0o600)
			_, err := loadEnv(t, baseEnv().with("CARACAL_CONFIG", path))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "caracal: "+path+": ")
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// The parser's own error holds the whole profile and prints the offending
// line (ErrorWithPosition, as the TOML package suggests for reporting): it
// is not in the chain of a load error, so a secret on that line cannot reach
// a report of the error that walks its causes. The parser's message quotes
// the token it stopped at, which for a secret written without quotes (all
// digits, say) is the secret itself: the quoted text is left out of the
// error.
func TestLoadConfigBadTOMLKeepsNoParserError(t *testing.T) {
	dir := t.TempDir()
	const digits = "00731946208851"
	for i, content := range []string{
		"zone_id = \"z\"\napp_client_secret = " + testSecret + "\n",
		"app_client_secret = \"" + testSecret + "\" x\n",
		"bootstrap_token = '" + testSecret + "\n",
		"zone_id = \"z\"\napp_client_secret = " + digits + "\n",
	} {
		path := writeFile(t, dir, fmt.Sprint(i, ".toml"), content, 0o600)
		_, err := loadEnv(t, baseEnv().with("CARACAL_CONFIG", path))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "invalid TOML")
		assert.NotContains(t, err.Error(), testSecret, "profile %d", i)
		assert.NotContains(t, err.Error(), digits[2:], "profile %d", i)
		var pe toml.ParseError
		if errors.As(err, &pe) {
			assert.NotContains(t, pe.ErrorWithPosition(), testSecret, "profile %d", i)
		}
	}
}

// A value of the wrong type is valid TOML: the error names the key and the
// type it wants, never the value.
func TestLoadConfigProfileWrongType(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, content, want string
	}{
		{"zone_id", "zone_id = 5\n", "line 1: zone_id must be a string"},
		{"secret", "zone_id = \"z\"\napp_client_secret = [\"" + testSecret + "\"]\n", "line 2: app_client_secret must be a string"},
		{"ttl", "default_ttl_seconds = \"3600\"\n", "line 1: default_ttl_seconds must be a whole number of seconds"},
		{"credentials", "credentials = \"resource://r\"\n", "line 1: credentials must be an array of tables"},
		{"credential resource", "[[credentials]]\nresource = 5\n", "line 2: credentials.resource must be a string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, dir, tc.name+".toml", tc.content, 0o600)
			_, err := loadEnv(t, baseEnv().with("CARACAL_CONFIG", path))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "caracal: "+path+": "+tc.want)
			assert.NotContains(t, err.Error(), "invalid TOML")
		})
	}
}

func TestLoadConfigUnknownKeys(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "caracal.toml", `zone_id = "z"
application_id = "a"
app_client_secret = "`+testSecret+`"
zone_url = "https://old.example"
run_command = "x"

[[credentials]]
resource = "resource://r"
scope = "read"
`, 0o600)
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	cfg, err := loadEnv(t, env{"CARACAL_CONFIG": path}, WithLogger(logger))
	require.NoError(t, err)
	assert.Equal(t, "z", cfg.ZoneID)
	assert.Equal(t, 1, strings.Count(logs.String(), "\n"), "one warning: %s", logs.String())
	assert.Contains(t, logs.String(), `"level":"WARN"`)
	assert.Contains(t, logs.String(), path)
	assert.Contains(t, logs.String(), `"keys":["zone_url","run_command","credentials.scope"]`)
	assert.Contains(t, logs.String(), "use sts_url")
	assert.NotContains(t, logs.String(), testSecret)

	_, err = loadEnv(t, env{"CARACAL_CONFIG": path}, WithStrictConfig())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "caracal: "+path+": unknown keys zone_url, run_command, credentials.scope")

	// A nil logger is silent and still loads.
	_, err = loadEnv(t, env{"CARACAL_CONFIG": path})
	require.NoError(t, err)
}

func TestLoadConfigNamedProfileIsChecked(t *testing.T) {
	root := t.TempDir()
	path := writeFile(t, root, "xdg/caracal/caracal.toml", "zone_id = \"z\"\n", 0o666)
	_, err := loadEnv(t, baseEnv().with("CARACAL_CONFIG", path))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "caracal: "+path+" is writable by group or others (mode 0666)")

	// A directory named as the profile says which setting named it.
	_, err = loadEnv(t, baseEnv().with("CARACAL_CONFIG", root))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "caracal: CARACAL_CONFIG names "+root+", which is not a regular file (point CARACAL_CONFIG at a caracal.toml file)")
	_, err = loadEnv(t, baseEnv(), WithConfigFile(root))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "caracal: WithConfigFile names "+root+", which is not a regular file (point WithConfigFile at a caracal.toml file)")

	// So does a directory named as the bindings file.
	_, err = loadEnv(t, baseEnv().with("CARACAL_RESOURCES_FILE", root))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "caracal: CARACAL_RESOURCES_FILE: "+root+" is not a regular file (point CARACAL_RESOURCES_FILE at a JSON file, or unset it)")
}
