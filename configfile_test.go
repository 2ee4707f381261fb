package caracal

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
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

func TestProfileCandidates(t *testing.T) {
	all := env{
		"CARACAL_CONFIG_HOME": "/cch",
		"XDG_CONFIG_HOME":     "/xdg",
		"HOME":                "/home/u",
		"APPDATA":             `C:\Users\u\AppData\Roaming`,
	}
	get := func(e env) func(string) string { return func(k string) string { return e[k] } }
	cases := []struct {
		goos string
		env  env
		want []string
	}{
		{"linux", all, []string{"/cch/caracal.toml", "/xdg/caracal/caracal.toml", "/home/u/.config/caracal/caracal.toml"}},
		{"linux", env{"HOME": "/home/u"}, []string{"/home/u/.config/caracal/caracal.toml"}},
		{"darwin", env{"HOME": "/Users/u"}, []string{"/Users/u/Library/Application Support/Caracal/caracal.toml"}},
		{"windows", env{"APPDATA": "/appdata"}, []string{filepath.Join("/appdata", "Caracal", "caracal.toml")}},
		{"linux", env{}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.goos, func(t *testing.T) {
			assert.Equal(t, tc.want, profileCandidates(tc.goos, get(tc.env)))
		})
	}
}

func TestLoadConfigProfileDiscovery(t *testing.T) {
	profileFor := func(zone string) string {
		return fmt.Sprintf("zone_id = %q\napplication_id = \"a\"\napp_client_secret = \"x-secret\"\n", zone)
	}
	setup := func(t *testing.T, present ...string) (root string, e env) {
		root = t.TempDir()
		e = env{
			"CARACAL_CONFIG_HOME": filepath.Join(root, "cch"),
			"XDG_CONFIG_HOME":     filepath.Join(root, "xdg"),
			"HOME":                filepath.Join(root, "home"),
		}
		for _, p := range present {
			switch p {
			case "cch":
				writeFile(t, root, "cch/caracal.toml", profileFor("zone-cch"), 0o600)
			case "xdg":
				writeFile(t, root, "xdg/caracal/caracal.toml", profileFor("zone-xdg"), 0o600)
			case "home":
				writeFile(t, root, "home/.config/caracal/caracal.toml", profileFor("zone-home"), 0o600)
			case "named":
				writeFile(t, root, "named.toml", profileFor("zone-named"), 0o600)
			}
		}
		return root, e
	}
	if runtimeGOOS() != "linux" {
		t.Skip("the OS config directory case assumes Linux")
	}
	cases := []struct {
		name    string
		present []string
		named   bool
		want    string
	}{
		{"config home first", []string{"cch", "xdg", "home"}, false, "zone-cch"},
		{"xdg when no config home file", []string{"xdg", "home"}, false, "zone-xdg"},
		{"os dir last", []string{"home"}, false, "zone-home"},
		{"CARACAL_CONFIG beats discovery", []string{"cch", "named"}, true, "zone-named"},
		{"none: environment only", nil, false, "zone-env"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root, e := setup(t, tc.present...)
			e = e.with("CARACAL_ZONE_ID", "", "CARACAL_APPLICATION_ID", "a", "CARACAL_APP_CLIENT_SECRET", testSecret)
			if tc.want == "zone-env" {
				e["CARACAL_ZONE_ID"] = "zone-env"
			}
			if tc.named {
				e["CARACAL_CONFIG"] = filepath.Join(root, "named.toml")
			}
			cfg, err := loadEnv(t, e)
			require.NoError(t, err)
			assert.Equal(t, tc.want, cfg.ZoneID)
		})
	}
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
// refused rather than read as "no option", which would load whichever
// profile the default locations hold.
func TestLoadConfigWithConfigFileEmpty(t *testing.T) {
	home := t.TempDir()
	writeFile(t, home, "caracal.toml", "zone_id = \"zone-default\"\napplication_id = \"x\"\napp_client_secret = \"y\"\n", 0o600)
	for _, path := range []string{"", "  "} {
		_, err := loadEnv(t, env{"CARACAL_CONFIG_HOME": home}, WithConfigFile(path))
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

func TestLoadConfigDiscoveryIgnoresDanglingSymlink(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "cch"), 0o700))
	require.NoError(t, os.Symlink(filepath.Join(root, "gone"), filepath.Join(root, "cch", "caracal.toml")))
	cfg, err := loadEnv(t, baseEnv().with("CARACAL_CONFIG_HOME", filepath.Join(root, "cch")))
	require.NoError(t, err)
	assert.Empty(t, cfg.Profile)
}

func TestLoadConfigDiscoveredProfileIsChecked(t *testing.T) {
	root := t.TempDir()
	path := writeFile(t, root, "xdg/caracal/caracal.toml", "zone_id = \"z\"\n", 0o666)
	_, err := loadEnv(t, baseEnv().with("XDG_CONFIG_HOME", filepath.Join(root, "xdg")))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "caracal: "+path+" is writable by group or others (mode 0666)")

	// A directory where the profile should be is an error, not a silent skip.
	require.NoError(t, os.MkdirAll(filepath.Join(root, "cch", "caracal.toml"), 0o700))
	_, err = loadEnv(t, baseEnv().with("CARACAL_CONFIG_HOME", filepath.Join(root, "cch")))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is not a regular file (replace it with a caracal.toml file, or remove it)")

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
