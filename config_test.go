package caracal

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testSecret is the client secret of the tests; no output may contain it.
const testSecret = "s3cr3t-Qx7-do-not-print"

// env is a map-backed environment for WithLookupEnv: tests never touch the
// process environment, and variables such as HOME are absent unless set.
type env map[string]string

func (e env) lookup(k string) (string, bool) {
	v, ok := e[k]
	return v, ok
}

// with returns a copy of e with kv (key, value, key, value, ...) applied.
func (e env) with(kv ...string) env {
	out := env{}
	for k, v := range e {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// baseEnv is a minimal valid environment-mode configuration.
func baseEnv() env {
	return env{
		"CARACAL_ZONE_ID":           "zone-env",
		"CARACAL_APPLICATION_ID":    "app-env",
		"CARACAL_APP_CLIENT_SECRET": testSecret,
	}
}

func loadEnv(t *testing.T, e env, opts ...Option) (Config, error) {
	t.Helper()
	cfg, err := LoadConfig(append([]Option{WithLookupEnv(e.lookup)}, opts...)...)
	if err != nil {
		assert.NotContains(t, err.Error(), testSecret, "an error shows the secret")
		assert.Zero(t, cfg, "a failed load returns a zero Config")
	}
	return cfg, err
}

// writeFile writes content to dir/name with mode (after umask, chmod).
func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, []byte(content), mode))
	require.NoError(t, os.Chmod(path, mode))
	return path
}

// fullProfile sets every key of PROTOCOL §2.3.
func fullProfile(secretFile string) string {
	return fmt.Sprintf(`
zone_id = "zone-file"
application_id = "app-file"
app_client_secret_file = %q
sts_url = "https://sts.file.example"
coordinator_url = "https://coord.file.example"
gateway_url = "https://gw.file.example"
default_ttl_seconds = 600

[[credentials]]
resource = "resource://tickets"
upstream_prefix = "http://tickets.internal"

[[credentials]]
resource = "resource://audit"

[[optional_credentials]]
resource = "resource://search"
upstream_prefix = "http://search.internal/v1"
`, secretFile)
}

func TestLoadConfigEnvironmentEveryVariable(t *testing.T) {
	dir := t.TempDir()
	secretFile := writeFile(t, dir, "secret", "  "+testSecret+"\n", 0o600)
	bindings := writeFile(t, dir, "bindings.json", `{"resource://b": "http://b.internal", "resource://a": "http://a.internal/api"}`, 0o644)
	e := env{
		"CARACAL_ZONE_ID":                    "zone-env",
		"CARACAL_APPLICATION_ID":             "app-env",
		"CARACAL_APP_CLIENT_SECRET_FILE":     secretFile,
		"CARACAL_STS_URL":                    "https://sts.example",
		"CARACAL_COORDINATOR_URL":            "https://coord.example",
		"CARACAL_GATEWAY_URL":                "https://gw.example",
		"CARACAL_APP_RESOURCES":              " resource://x, ,resource://y,resource://x",
		"CARACAL_RESOURCES":                  "resource://c=http://c.internal/long/prefix, resource://a=http://a2.internal",
		"CARACAL_RESOURCES_FILE":             bindings,
		"CARACAL_DEFAULT_TTL_SECONDS":        "90",
		"CARACAL_ENV":                        "production",
		"CARACAL_ALLOW_INSECURE_CONFIG_URLS": "true",
	}
	cfg, err := loadEnv(t, e)
	require.NoError(t, err)
	assert.Equal(t, Config{
		ZoneID:         "zone-env",
		ApplicationID:  "app-env",
		ClientSecret:   testSecret,
		STSURL:         "https://sts.example",
		CoordinatorURL: "https://coord.example",
		GatewayURL:     "https://gw.example",
		Resources:      []string{"resource://x", "resource://y"},
		Bindings: []ResourceBinding{
			{"resource://c", "http://c.internal/long/prefix"},
			{"resource://a", "http://a2.internal"}, // CARACAL_RESOURCES beats the file
			{"resource://b", "http://b.internal"},
		},
		DefaultTTL:        90 * time.Second,
		Production:        true,
		AllowInsecureURLs: true,
	}, cfg)
	assert.Equal(t, []string{"resource://x", "resource://y", "resource://c", "resource://a", "resource://b"}, cfg.audience())
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := loadEnv(t, baseEnv())
	require.NoError(t, err)
	assert.Equal(t, Config{
		ZoneID:         "zone-env",
		ApplicationID:  "app-env",
		ClientSecret:   testSecret,
		STSURL:         "http://localhost:8080",
		CoordinatorURL: "http://localhost:4000",
		GatewayURL:     "http://localhost:8081",
	}, cfg)
}

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

// TestLoadConfigPrecedence proves option > environment > profile > default
// for each scalar key.
func TestLoadConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	secretFile := writeFile(t, dir, "secret", "file-secret-value", 0o600)
	profile := writeFile(t, dir, "caracal.toml", fullProfile(secretFile), 0o600)

	cases := []struct {
		name              string
		opt               Option
		env               []string
		get               func(Config) any
		want, wantEnv     any
		wantFile, wantDef any
	}{
		{"zone", WithZone("zone-opt"), []string{"CARACAL_ZONE_ID", "zone-env"},
			func(c Config) any { return c.ZoneID }, "zone-opt", "zone-env", "zone-file", nil},
		{"application", WithApplication("app-opt"), []string{"CARACAL_APPLICATION_ID", "app-env"},
			func(c Config) any { return c.ApplicationID }, "app-opt", "app-env", "app-file", nil},
		{"secret", WithClientSecret("opt-secret-value"), []string{"CARACAL_APP_CLIENT_SECRET", "env-secret-value"},
			func(c Config) any { return c.ClientSecret }, "opt-secret-value", "env-secret-value", "file-secret-value", nil},
		{"sts", WithSTSURL("https://sts.opt"), []string{"CARACAL_STS_URL", "https://sts.env"},
			func(c Config) any { return c.STSURL }, "https://sts.opt", "https://sts.env", "https://sts.file.example", "http://localhost:8080"},
		{"coordinator", WithCoordinatorURL("https://coord.opt"), []string{"CARACAL_COORDINATOR_URL", "https://coord.env"},
			func(c Config) any { return c.CoordinatorURL }, "https://coord.opt", "https://coord.env", "https://coord.file.example", "http://localhost:4000"},
		{"gateway", WithGatewayURL("https://gw.opt"), []string{"CARACAL_GATEWAY_URL", "https://gw.env"},
			func(c Config) any { return c.GatewayURL }, "https://gw.opt", "https://gw.env", "https://gw.file.example", "http://localhost:8081"},
		{"ttl", WithDefaultTTL(time.Hour), []string{"CARACAL_DEFAULT_TTL_SECONDS", "120"},
			func(c Config) any { return c.DefaultTTL }, time.Hour, 120 * time.Second, 600 * time.Second, time.Duration(0)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			withProfile := env{"CARACAL_CONFIG": profile}
			cfg, err := loadEnv(t, withProfile.with(tc.env...), tc.opt)
			require.NoError(t, err)
			assert.Equal(t, tc.want, tc.get(cfg), "option beats environment")

			cfg, err = loadEnv(t, withProfile.with(tc.env...))
			require.NoError(t, err)
			assert.Equal(t, tc.wantEnv, tc.get(cfg), "environment beats profile")

			cfg, err = loadEnv(t, withProfile)
			require.NoError(t, err)
			assert.Equal(t, tc.wantFile, tc.get(cfg), "profile beats default")

			if tc.wantDef != nil {
				cfg, err = loadEnv(t, baseEnv())
				require.NoError(t, err)
				assert.Equal(t, tc.wantDef, tc.get(cfg), "default")
			}
		})
	}
}

func TestLoadConfigLastOptionWins(t *testing.T) {
	cfg, err := loadEnv(t, baseEnv(), WithZone("first"), WithZone("second"),
		WithBootstrapToken("opaque-token"), WithClientSecret("final-secret"))
	require.NoError(t, err)
	assert.Equal(t, "second", cfg.ZoneID)
	assert.Equal(t, "final-secret", cfg.ClientSecret)
	assert.Empty(t, cfg.BootstrapToken)
}

func TestLoadConfigMissingIdentity(t *testing.T) {
	_, err := loadEnv(t, env{"CARACAL_APP_CLIENT_SECRET": testSecret})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "caracal: CARACAL_ZONE_ID is not set (set it, or set CARACAL_CONFIG to a profile)")
	assert.Contains(t, err.Error(), "caracal: CARACAL_APPLICATION_ID is not set")

	dir := t.TempDir()
	path := writeFile(t, dir, "caracal.toml", "application_id = \"a\"\napp_client_secret = \"x\"\n", 0o600)
	_, err = loadEnv(t, env{"CARACAL_CONFIG": path})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "zone_id is not set in "+path+" and CARACAL_ZONE_ID is not set")
	assert.NotContains(t, err.Error(), "application_id")
}

func TestLoadConfigMissingCredential(t *testing.T) {
	_, err := loadEnv(t, env{"CARACAL_ZONE_ID": "z", "CARACAL_APPLICATION_ID": "a"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no credential is configured")
	assert.Contains(t, err.Error(), "CARACAL_APP_CLIENT_SECRET_FILE")
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

func TestLoadConfigNamedProfileMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.toml")
	_, err := loadEnv(t, baseEnv().with("CARACAL_CONFIG", missing))
	require.Error(t, err)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.Contains(t, err.Error(), "caracal: CARACAL_CONFIG names "+missing+", which does not exist")

	_, err = loadEnv(t, baseEnv(), WithConfigFile(missing))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "caracal: WithConfigFile names "+missing)
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

func TestLoadConfigSecretFiles(t *testing.T) {
	dir := t.TempDir()
	ok := writeFile(t, dir, "ok", "\n\t"+testSecret+"  \n", 0o600)
	readOnly := writeFile(t, dir, "ro", testSecret, 0o400)
	groupRead := writeFile(t, dir, "group", testSecret, 0o640)
	worldRead := writeFile(t, dir, "world", testSecret, 0o604)
	empty := writeFile(t, dir, "empty", " \n\t\n", 0o600)
	missing := filepath.Join(dir, "missing")

	cases := []struct {
		name, path, wantErr string
	}{
		{"owner only, trimmed", ok, ""},
		{"read only", readOnly, ""},
		{"group readable", groupRead, "is accessible by group or others (mode 0640); run chmod 600 " + groupRead},
		{"world readable", worldRead, "(mode 0604)"},
		{"empty", empty, "secret file " + empty + " is empty"},
		{"missing", missing, "secret file " + missing + " does not exist"},
		{"directory", dir, "is not a regular file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := env{"CARACAL_ZONE_ID": "z", "CARACAL_APPLICATION_ID": "a", "CARACAL_APP_CLIENT_SECRET_FILE": tc.path}
			for _, source := range []struct {
				name string
				env  env
				opts []Option
			}{
				{"CARACAL_APP_CLIENT_SECRET_FILE", e, nil},
				{"WithClientSecretFile", env{"CARACAL_ZONE_ID": "z", "CARACAL_APPLICATION_ID": "a"}, []Option{WithClientSecretFile(tc.path)}},
			} {
				cfg, err := loadEnv(t, source.env, source.opts...)
				if tc.wantErr == "" {
					require.NoError(t, err, source.name)
					assert.Equal(t, testSecret, cfg.ClientSecret)
					continue
				}
				require.Error(t, err, source.name)
				assert.Contains(t, err.Error(), "caracal: "+source.name+": ")
				assert.Contains(t, err.Error(), tc.wantErr)
			}
		})
	}
}

func TestLoadConfigProfileSecretRules(t *testing.T) {
	dir := t.TempDir()
	secretFile := writeFile(t, dir, "secret", testSecret, 0o600)
	inline := "zone_id = \"z\"\napplication_id = \"a\"\napp_client_secret = \"" + testSecret + "\"\n"
	fromFile := "zone_id = \"z\"\napplication_id = \"a\"\napp_client_secret_file = \"" + secretFile + "\"\n"
	cases := []struct {
		name, content string
		mode          os.FileMode
		wantErr       string
	}{
		{"inline, owner only", inline, 0o600, ""},
		{"inline, group readable", inline, 0o640, "holds an inline app_client_secret but is readable by group or others (mode 0640)"},
		{"file, group readable profile", fromFile, 0o644, ""},
		{"group writable", fromFile, 0o660, "is writable by group or others (mode 0660); run chmod go-w"},
		{"world writable", fromFile, 0o602, "is writable by group or others (mode 0602)"},
		{"both keys", inline + "app_client_secret_file = \"" + secretFile + "\"\n", 0o600, ": app_client_secret and app_client_secret_file are both set"},
		{"empty inline", "zone_id = \"z\"\napplication_id = \"a\"\napp_client_secret = \"\"\n", 0o600, "app_client_secret is empty"},
		{"empty file key", "zone_id = \"z\"\napplication_id = \"a\"\napp_client_secret_file = \" \"\n", 0o600, "app_client_secret_file is empty"},
		{"neither", "zone_id = \"z\"\napplication_id = \"a\"\n", 0o600, "no credential is configured"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, dir, "caracal.toml", tc.content, tc.mode)
			cfg, err := loadEnv(t, env{"CARACAL_CONFIG": path})
			if tc.wantErr == "" {
				require.NoError(t, err)
				assert.Equal(t, testSecret, cfg.ClientSecret)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
			assert.Contains(t, err.Error(), path)
		})
	}
}

// jwt builds an unsigned JWT-shaped token with the given header and claims.
func jwt(header, claims map[string]any) string {
	enc := func(v map[string]any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(header) + "." + enc(claims) + ".c2lnbmF0dXJl"
}

func TestLoadConfigCredentialModes(t *testing.T) {
	dir := t.TempDir()
	secretFile := writeFile(t, dir, "secret", testSecret, 0o600)
	profile := writeFile(t, dir, "caracal.toml", "zone_id = \"z\"\napplication_id = \"a\"\napp_client_secret_file = \""+secretFile+"\"\n", 0o600)
	live := jwt(map[string]any{"alg": "ES256"}, map[string]any{"exp": time.Now().Add(time.Hour).Unix(), "use": "session"})
	id := env{"CARACAL_ZONE_ID": "z", "CARACAL_APPLICATION_ID": "a"}

	cases := []struct {
		name       string
		env        env
		opts       []Option
		wantSecret string
		wantToken  string
		wantErr    string
	}{
		{"bootstrap token", id.with("CARACAL_BOOTSTRAP_TOKEN", live), nil, "", live, ""},
		{"opaque bootstrap token", id.with("CARACAL_BOOTSTRAP_TOKEN", "opaque-token"), nil, "", "opaque-token", ""},
		{"both env secrets", id.with("CARACAL_APP_CLIENT_SECRET", testSecret, "CARACAL_APP_CLIENT_SECRET_FILE", secretFile), nil, "", "",
			"caracal: CARACAL_APP_CLIENT_SECRET and CARACAL_APP_CLIENT_SECRET_FILE are both set"},
		{"env secret and token", id.with("CARACAL_APP_CLIENT_SECRET", testSecret, "CARACAL_BOOTSTRAP_TOKEN", live), nil, "", "",
			"caracal: CARACAL_BOOTSTRAP_TOKEN and CARACAL_APP_CLIENT_SECRET are both set (configure exactly one credential)"},
		{"env secret file and token", id.with("CARACAL_APP_CLIENT_SECRET_FILE", secretFile, "CARACAL_BOOTSTRAP_TOKEN", live), nil, "", "",
			"CARACAL_BOOTSTRAP_TOKEN and CARACAL_APP_CLIENT_SECRET_FILE are both set"},
		{"profile secret and env token", env{"CARACAL_CONFIG": profile, "CARACAL_BOOTSTRAP_TOKEN": live}, nil, "", "",
			"CARACAL_BOOTSTRAP_TOKEN and " + profile + ": app_client_secret_file are both set"},
		{"env secret beats profile secret", env{"CARACAL_CONFIG": profile, "CARACAL_APP_CLIENT_SECRET": "env-secret"}, nil, "env-secret", "", ""},
		{"WithClientSecret replaces env token", id.with("CARACAL_BOOTSTRAP_TOKEN", live), []Option{WithClientSecret("opt-secret")}, "opt-secret", "", ""},
		{"WithClientSecret resolves an env conflict", id.with("CARACAL_BOOTSTRAP_TOKEN", live, "CARACAL_APP_CLIENT_SECRET", "x"), []Option{WithClientSecret("opt-secret")}, "opt-secret", "", ""},
		{"WithBootstrapToken replaces profile secret", env{"CARACAL_CONFIG": profile}, []Option{WithBootstrapToken(live)}, "", live, ""},
		{"WithClientSecretFile replaces env token", id.with("CARACAL_BOOTSTRAP_TOKEN", live), []Option{WithClientSecretFile(secretFile)}, testSecret, "", ""},
		{"shadowed secret file is not read", id.with("CARACAL_APP_CLIENT_SECRET_FILE", filepath.Join(dir, "missing")), []Option{WithClientSecret("opt-secret")}, "opt-secret", "", ""},
		{"empty WithClientSecret", id, []Option{WithClientSecret("")}, "", "", "caracal: WithClientSecret: the secret is empty"},
		{"empty WithBootstrapToken", id, []Option{WithBootstrapToken("")}, "", "", "caracal: WithBootstrapToken: the token is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadEnv(t, tc.env, tc.opts...)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantSecret, cfg.ClientSecret)
			assert.Equal(t, tc.wantToken, cfg.BootstrapToken)
		})
	}
}

func TestBootstrapTokenChecks(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name, token, wantErr string
	}{
		{"signed, live", jwt(map[string]any{"alg": "ES256"}, map[string]any{"exp": now.Add(time.Minute).Unix()}), ""},
		{"no exp", jwt(map[string]any{"alg": "ES256"}, map[string]any{"sub": "x"}), ""},
		{"alg none", jwt(map[string]any{"alg": "none"}, map[string]any{"exp": now.Add(time.Minute).Unix()}), "unsigned (alg none)"},
		{"alg NONE", jwt(map[string]any{"alg": "NONE"}, map[string]any{}), "unsigned (alg none)"},
		{"expired", jwt(map[string]any{"alg": "ES256"}, map[string]any{"exp": now.Add(-time.Minute).Unix()}), "the token expired at "},
		{"exp now", jwt(map[string]any{"alg": "ES256"}, map[string]any{"exp": now.Unix()}), "the token expired at "},
		{"fractional exp in the past", jwt(map[string]any{"alg": "ES256"}, map[string]any{"exp": 1.5}), "expired at 1970-01-01T00:00:01Z"},
		{"huge negative exp", jwt(map[string]any{"alg": "ES256"}, map[string]any{"exp": -1e300}), "expired at a time out of range"},
		{"string exp ignored", jwt(map[string]any{"alg": "ES256"}, map[string]any{"exp": "0"}), ""},
		{"opaque", "opaque-bootstrap-token", ""},
		{"three undecodable parts", "a.b.c", ""},
		{"two parts", "a.b", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := checkBootstrapToken("CARACAL_BOOTSTRAP_TOKEN", tc.token, now)
			if tc.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "caracal: CARACAL_BOOTSTRAP_TOKEN: ")
			assert.Contains(t, err.Error(), tc.wantErr)
			assert.NotContains(t, err.Error(), tc.token)
		})
	}

	// Through the loader, with the source named.
	_, err := loadEnv(t, env{"CARACAL_ZONE_ID": "z", "CARACAL_APPLICATION_ID": "a",
		"CARACAL_BOOTSTRAP_TOKEN": jwt(map[string]any{"alg": "none"}, map[string]any{})})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "caracal: CARACAL_BOOTSTRAP_TOKEN: the token is unsigned")
	_, err = loadEnv(t, baseEnv(), WithBootstrapToken(jwt(map[string]any{"alg": "ES256"}, map[string]any{"exp": 1})))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "caracal: WithBootstrapToken: the token expired")
}

func TestParseResources(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    []ResourceBinding
		wantErr []string
	}{
		{"one", "resource://a=http://a.internal", []ResourceBinding{{"resource://a", "http://a.internal"}}, nil},
		{"spaces and empties", " , resource://a = https://a.internal/x ,,", []ResourceBinding{{"resource://a", "https://a.internal/x"}}, nil},
		{"prefix with =", "r=http://h/p?q=1", []ResourceBinding{{"r", "http://h/p?q=1"}}, nil},
		{"every bad entry", "ok=http://ok,x,=http://h,r=,r2=ftp://h,r3=/relative,r4=http://", []ResourceBinding{{"ok", "http://ok"}}, []string{
			`caracal: CARACAL_RESOURCES: entry 2 "x": want resource=upstream_prefix`,
			`entry 3 "=http://h": want resource=upstream_prefix`,
			`entry 4 "r": the upstream prefix is empty`,
			`entry 5 "r2": upstream prefix "ftp://h" is not an http or https URL`,
			`entry 6 "r3": upstream prefix "/relative" is not an absolute http or https URL`,
			`entry 7 "r4": upstream prefix "http://" is not an absolute`,
		}},
		{"prefix without a resource, password hidden", "https://svc:hunter2@up.internal/api", nil, []string{
			`entry 1 "https://svc:xxxxx@up.internal/api": want resource=upstream_prefix`,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseResources("CARACAL_RESOURCES", tc.in)
			assert.Equal(t, tc.want, got)
			if tc.wantErr == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.wantErr {
				assert.Contains(t, err.Error(), w)
			}
			assert.Len(t, strings.Split(err.Error(), "\n"), len(tc.wantErr))
		})
	}
}

func TestParseBindingsJSON(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    []ResourceBinding
		wantErr []string
	}{
		{"object, key order", `{"z": "http://z", "a": "https://a/x"}`, []ResourceBinding{{"a", "https://a/x"}, {"z", "http://z"}}, nil},
		{"array", `[{"resource_id": "r1", "upstream_prefix": "http://one"}, {"upstream_prefix": "http://two", "resource_id": "r2"}]`,
			[]ResourceBinding{{"r1", "http://one"}, {"r2", "http://two"}}, nil},
		{"empty array", `[]`, nil, nil},
		{"object, bad entries", `{"a": 5, "b": "nope", "": "http://x", "ok": "http://ok"}`, []ResourceBinding{{"ok", "http://ok"}}, []string{
			`entry "": the resource id is empty`, `entry "a": the upstream prefix is not a string`, `entry "b": upstream prefix "nope"`,
		}},
		{"array, bad entries", `[{"resource_id": "r", "upstream_prefix": "http://r", "extra": 1}, 7, {"resource_id": "r"}, {"resource_id": 3, "upstream_prefix": "http://x"}, {"resource_id": "", "upstream_prefix": "x"}, {"resource_id": "ok", "upstream_prefix": "http://ok"}]`,
			[]ResourceBinding{{"ok", "http://ok"}}, []string{
				`entry 1: unknown key "extra"`, `entry 2: want an object`, `entry 3: upstream_prefix is missing`,
				`entry 4: resource_id is missing or not a string`, `entry 5: the resource id is empty; upstream prefix "x"`,
			}},
		{"not JSON", `{oops`, nil, []string{"invalid JSON"}},
		{"wrong shape", `"str"`, nil, []string{"want a JSON object"}},
		{"empty", ``, nil, []string{"want a JSON object"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseBindingsJSON("CARACAL_RESOURCES_FILE: f.json", []byte(tc.in))
			assert.Equal(t, tc.want, got)
			if tc.wantErr == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tc.wantErr {
				assert.Contains(t, err.Error(), "caracal: CARACAL_RESOURCES_FILE: f.json: ")
				assert.Contains(t, err.Error(), w)
			}
			assert.Len(t, strings.Split(err.Error(), "\n"), len(tc.wantErr))
		})
	}
}

func TestLoadConfigBindingsMerge(t *testing.T) {
	dir := t.TempDir()
	profile := writeFile(t, dir, "caracal.toml", `zone_id = "z"
application_id = "a"
app_client_secret = "x"

[[credentials]]
resource = "r1"
upstream_prefix = "http://profile/r1"

[[credentials]]
resource = "r2"
upstream_prefix = "http://profile/r2"

[[credentials]]
resource = "r3"
upstream_prefix = "http://profile/r3"
`, 0o600)
	file := writeFile(t, dir, "b.json", `[{"resource_id": "r2", "upstream_prefix": "http://file/r2"}, {"resource_id": "r4", "upstream_prefix": "http://file/r4"}]`, 0o600)
	e := env{
		"CARACAL_CONFIG":         profile,
		"CARACAL_RESOURCES_FILE": file,
		"CARACAL_RESOURCES":      "r3=http://env/r3,r4=http://env/r4",
	}
	cfg, err := loadEnv(t, e, WithBinding("r1", "http://option/r1/longest"), WithBinding("r5", "http://o/r5"))
	require.NoError(t, err)
	assert.Equal(t, []ResourceBinding{
		{"r1", "http://option/r1/longest"},
		{"r2", "http://file/r2"},
		{"r3", "http://env/r3"},
		{"r4", "http://env/r4"},
		{"r5", "http://o/r5"},
	}, cfg.Bindings)
	assert.Equal(t, []string{"r1", "r2", "r3"}, cfg.Resources)
	assert.Equal(t, []string{"r1", "r2", "r3", "r4", "r5"}, cfg.audience())
}

func TestLoadConfigBindingErrors(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.json", `{"a": "nope"}`, 0o600)
	profile := writeFile(t, dir, "caracal.toml", `zone_id = "z"
application_id = "a"
app_client_secret = "x"

[[credentials]]
upstream_prefix = "http://x"

[[optional_credentials]]
resource = "r"
upstream_prefix = "gopher://x"
`, 0o600)
	_, err := loadEnv(t, env{
		"CARACAL_CONFIG":         profile,
		"CARACAL_RESOURCES_FILE": bad,
		"CARACAL_RESOURCES":      "x",
	}, WithBinding("", "http://h"), WithResources("ok", " "))
	require.Error(t, err)
	msg := err.Error()
	for _, w := range []string{
		"caracal: " + profile + ": credentials[0]: resource is empty",
		"caracal: " + profile + `: optional_credentials[0] "r": upstream prefix "gopher://x" is not an http or https URL`,
		"caracal: CARACAL_RESOURCES_FILE: " + bad + `: entry "a": upstream prefix "nope"`,
		`caracal: CARACAL_RESOURCES: entry 1 "x": want resource=upstream_prefix`,
		`caracal: WithBinding("", "http://h"): the resource id is empty`,
		"caracal: WithResources: entry 2 is empty",
	} {
		assert.Contains(t, msg, w)
	}

	missing := filepath.Join(dir, "none.json")
	_, err = loadEnv(t, baseEnv().with("CARACAL_RESOURCES_FILE", missing))
	require.Error(t, err)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.Contains(t, err.Error(), "caracal: CARACAL_RESOURCES_FILE: "+missing+" does not exist")
}

func TestLoadConfigDefaultTTL(t *testing.T) {
	dir := t.TempDir()
	profileTTL := func(n string) string {
		return writeFile(t, dir, "p"+n+".toml", "zone_id = \"z\"\napplication_id = \"a\"\napp_client_secret = \"x\"\ndefault_ttl_seconds = "+n+"\n", 0o600)
	}
	cases := []struct {
		name    string
		env     env
		want    time.Duration
		wantErr string
	}{
		{"env", baseEnv().with("CARACAL_DEFAULT_TTL_SECONDS", "45"), 45 * time.Second, ""},
		{"env not a number", baseEnv().with("CARACAL_DEFAULT_TTL_SECONDS", "1h"), 0, `caracal: CARACAL_DEFAULT_TTL_SECONDS is "1h"; want a positive whole number of seconds`},
		{"env zero", baseEnv().with("CARACAL_DEFAULT_TTL_SECONDS", "0"), 0, "CARACAL_DEFAULT_TTL_SECONDS is \"0\""},
		{"env negative", baseEnv().with("CARACAL_DEFAULT_TTL_SECONDS", "-3"), 0, "CARACAL_DEFAULT_TTL_SECONDS is \"-3\""},
		{"env too large", baseEnv().with("CARACAL_DEFAULT_TTL_SECONDS", "9223372036854775807"), 0, "too large"},
		{"env at the Coordinator's limit", baseEnv().with("CARACAL_DEFAULT_TTL_SECONDS", "86400"), 24 * time.Hour, ""},
		{"env over the Coordinator's limit", baseEnv().with("CARACAL_DEFAULT_TTL_SECONDS", "86401"), 0, "CARACAL_DEFAULT_TTL_SECONDS is 86401 seconds"},
		{"profile over the Coordinator's limit", env{"CARACAL_CONFIG": profileTTL("90000")}, 0, "default_ttl_seconds is 90000 seconds"},
		{"profile", env{"CARACAL_CONFIG": profileTTL("30")}, 30 * time.Second, ""},
		{"profile zero is unset", env{"CARACAL_CONFIG": profileTTL("0")}, 0, ""},
		{"profile zero falls back to env", env{"CARACAL_CONFIG": profileTTL("0"), "CARACAL_DEFAULT_TTL_SECONDS": "7"}, 7 * time.Second, ""},
		{"profile negative", env{"CARACAL_CONFIG": profileTTL("-1")}, 0, "default_ttl_seconds is -1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadEnv(t, tc.env)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, cfg.DefaultTTL)
		})
	}

	for _, d := range []time.Duration{-time.Second, time.Millisecond, 25 * time.Hour} {
		_, err := loadEnv(t, baseEnv(), WithDefaultTTL(d))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "caracal: WithDefaultTTL is ")
	}
}

func TestLoadConfigURLs(t *testing.T) {
	cases := []struct {
		name    string
		env     env
		opts    []Option
		wantErr string
	}{
		{"not absolute", baseEnv().with("CARACAL_STS_URL", "sts.example:8080"), nil, `caracal: CARACAL_STS_URL: "sts.example:8080" is not an absolute http or https URL`},
		{"relative", baseEnv().with("CARACAL_COORDINATOR_URL", "/coord"), nil, `caracal: CARACAL_COORDINATOR_URL: "/coord" is not an absolute`},
		{"scheme", baseEnv().with("CARACAL_GATEWAY_URL", "ftp://gw"), nil, `caracal: CARACAL_GATEWAY_URL: "ftp://gw" is not an http or https URL`},
		{"no host", baseEnv(), []Option{WithSTSURL("https://")}, `caracal: WithSTSURL: "https://" is not an absolute`},
		{"password redacted", baseEnv().with("CARACAL_STS_URL", "ftp://user:hunter2@h"), nil, `"ftp://user:xxxxx@h"`},
		{"upper-case scheme", baseEnv().with("CARACAL_STS_URL", "HTTPS://sts.example"), nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadEnv(t, tc.env, tc.opts...)
			if tc.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
			assert.NotContains(t, err.Error(), "hunter2")
		})
	}

	dir := t.TempDir()
	profile := writeFile(t, dir, "caracal.toml", "zone_id = \"z\"\napplication_id = \"a\"\napp_client_secret = \"x\"\nsts_url = \"nope\"\n", 0o600)
	_, err := loadEnv(t, env{"CARACAL_CONFIG": profile})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "caracal: "+profile+`: sts_url: "nope" is not an absolute`)
}

func TestLoadConfigProduction(t *testing.T) {
	prod := baseEnv().with("CARACAL_ENV", "production")
	urls := prod.with("CARACAL_STS_URL", "https://sts.example", "CARACAL_COORDINATOR_URL", "https://coord.example", "CARACAL_GATEWAY_URL", "https://gw.example")
	cases := []struct {
		name     string
		env      env
		opts     []Option
		wantErr  []string
		wantWarn bool
	}{
		{"URLs required", prod, nil, []string{
			"caracal: CARACAL_STS_URL is required when CARACAL_ENV=production (set it, set sts_url in the profile, or use WithSTSURL)",
			"caracal: CARACAL_COORDINATOR_URL is required when CARACAL_ENV=production",
			"caracal: CARACAL_GATEWAY_URL is required when CARACAL_ENV=production",
		}, false},
		{"https everywhere", urls, nil, nil, false},
		{"options count as explicit", prod, []Option{WithSTSURL("https://s"), WithCoordinatorURL("https://c"), WithGatewayURL("https://g")}, nil, false},
		{"http refused", urls.with("CARACAL_COORDINATOR_URL", "http://coord.example"), nil, []string{
			`caracal: CARACAL_COORDINATOR_URL: http://coord.example is not https, which CARACAL_ENV=production requires`,
		}, false},
		{"loopback http allowed", urls.with("CARACAL_STS_URL", "http://localhost:8080", "CARACAL_COORDINATOR_URL", "http://127.0.0.1:4000", "CARACAL_GATEWAY_URL", "http://[::1]:8081"), nil, nil, false},
		{"insecure allowed with one warning", urls.with("CARACAL_STS_URL", "http://sts.example", "CARACAL_GATEWAY_URL", "http://gw.example", "CARACAL_ALLOW_INSECURE_CONFIG_URLS", "true"), nil, nil, true},
		{"allow needs exactly true", urls.with("CARACAL_STS_URL", "http://sts.example", "CARACAL_ALLOW_INSECURE_CONFIG_URLS", "1"), nil, []string{"CARACAL_STS_URL: http://sts.example is not https"}, false},
		{"not production: http fine", baseEnv().with("CARACAL_ENV", "staging", "CARACAL_STS_URL", "http://sts.example"), nil, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			cfg, err := loadEnv(t, tc.env, append(tc.opts, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))...)
			if tc.wantErr != nil {
				require.Error(t, err)
				for _, w := range tc.wantErr {
					assert.Contains(t, err.Error(), w)
				}
				assert.Len(t, strings.Split(err.Error(), "\n"), len(tc.wantErr))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.env["CARACAL_ENV"] == "production", cfg.Production)
			if tc.wantWarn {
				assert.Equal(t, 1, strings.Count(logs.String(), "level=WARN"), logs.String())
				assert.Contains(t, logs.String(), "CARACAL_STS_URL")
				assert.Contains(t, logs.String(), "CARACAL_GATEWAY_URL")
			} else {
				assert.Empty(t, logs.String())
			}
		})
	}
}

func TestLoadConfigWarnings(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cfg, err := loadEnv(t, baseEnv().with("CARACAL_ENV", "Production", "CARACAL_SUBJECT_TOKEN", "old-token", "CARACAL_ZONE_URL", "http://x"), WithLogger(log))
	require.NoError(t, err)
	assert.False(t, cfg.Production)
	assert.Contains(t, logs.String(), "production gating is off")
	assert.Contains(t, logs.String(), "CARACAL_SUBJECT_TOKEN is no longer read; use CARACAL_BOOTSTRAP_TOKEN")
	assert.Contains(t, logs.String(), "CARACAL_ZONE_URL is no longer read; use CARACAL_STS_URL")
	assert.NotContains(t, logs.String(), "old-token")
}

func TestLoadConfigAllOrNothingReportsEverything(t *testing.T) {
	_, err := loadEnv(t, env{
		"CARACAL_APP_CLIENT_SECRET":   testSecret,
		"CARACAL_STS_URL":             "nope",
		"CARACAL_DEFAULT_TTL_SECONDS": "x",
		"CARACAL_RESOURCES":           "a,b",
	})
	require.Error(t, err)
	lines := strings.Split(err.Error(), "\n")
	assert.Len(t, lines, 6, err.Error())
	for _, l := range lines {
		assert.True(t, strings.HasPrefix(l, "caracal: "), l)
	}
}

func TestValidate(t *testing.T) {
	good := Config{
		ZoneID: "z", ApplicationID: "a", ClientSecret: testSecret,
		STSURL: "https://sts", CoordinatorURL: "https://coord",
	}
	require.NoError(t, good.Validate())

	cases := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"zone", func(c *Config) { c.ZoneID = " " }, "caracal: Config.ZoneID is empty"},
		{"application", func(c *Config) { c.ApplicationID = "" }, "caracal: Config.ApplicationID is empty"},
		{"no credential", func(c *Config) { c.ClientSecret = "" }, "neither Config.ClientSecret nor Config.BootstrapToken is set"},
		{"two credentials", func(c *Config) { c.BootstrapToken = "t" }, "Config.ClientSecret and Config.BootstrapToken are both set"},
		{"bad token", func(c *Config) {
			c.ClientSecret, c.BootstrapToken = "", jwt(map[string]any{"alg": "none"}, nil)
		}, "caracal: Config.BootstrapToken: the token is unsigned"},
		{"no STS", func(c *Config) { c.STSURL = "" }, "caracal: Config.STSURL is empty"},
		{"bad coordinator", func(c *Config) { c.CoordinatorURL = "coord" }, `caracal: Config.CoordinatorURL: "coord" is not an absolute`},
		{"production http", func(c *Config) { c.Production, c.STSURL = true, "http://sts" }, "caracal: Config.STSURL: http://sts is not https"},
		{"bindings need a gateway", func(c *Config) { c.Bindings = []ResourceBinding{{"r", "http://r"}} }, "Config.GatewayURL is empty but Config.Bindings"},
		{"bad binding", func(c *Config) {
			c.GatewayURL, c.Bindings = "https://gw", []ResourceBinding{{"", "http://r"}}
		}, "caracal: Config.Bindings[0]: the resource id is empty"},
		{"bad resource", func(c *Config) { c.Resources = []string{"a", ""} }, "caracal: Config.Resources[1] is empty"},
		{"negative ttl", func(c *Config) { c.DefaultTTL = -time.Second }, "caracal: Config.DefaultTTL is -1s"},
		{"sub-second ttl", func(c *Config) { c.DefaultTTL = time.Millisecond }, "Config.DefaultTTL is 1ms"},
		{"ttl over a day", func(c *Config) { c.DefaultTTL = 48 * time.Hour }, "Config.DefaultTTL is 48h0m0s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good.clone()
			tc.mutate(&cfg)
			err := cfg.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
			assert.NotContains(t, err.Error(), testSecret)
		})
	}

	ok := good
	ok.Production, ok.AllowInsecureURLs, ok.STSURL = true, true, "http://sts"
	assert.NoError(t, ok.Validate())
}

func TestNewFromConfigAppliesOptions(t *testing.T) {
	cfg := Config{ZoneID: "z", ApplicationID: "a", BootstrapToken: "opaque", STSURL: "https://s", CoordinatorURL: "https://c"}
	c, err := NewFromConfig(cfg, WithClientSecret(testSecret), WithBinding("r", "http://r"), WithGatewayURL("https://g"))
	require.NoError(t, err)
	got := c.Config()
	assert.Equal(t, testSecret, got.ClientSecret)
	assert.Empty(t, got.BootstrapToken)
	assert.Equal(t, []ResourceBinding{{"r", "http://r"}}, got.Bindings)
	assert.Zero(t, got.opt, "Client.Config drops the option bookkeeping")

	_, err = NewFromConfig(cfg, WithClientSecretFile(filepath.Join(t.TempDir(), "missing")))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "caracal: WithClientSecretFile: secret file")

	// Profile options would be silently ignored: they are refused.
	for _, opt := range []Option{WithConfigFile("caracal.toml"), WithStrictConfig()} {
		_, err = NewFromConfig(cfg, WithClientSecret(testSecret), opt)
		assert.ErrorContains(t, err, "load the profile with New")
	}
}

func TestNewLoadsConfig(t *testing.T) {
	c, err := New(WithLookupEnv(baseEnv().lookup))
	require.NoError(t, err)
	assert.Equal(t, "zone-env", c.Config().ZoneID)

	_, err = New(WithLookupEnv(env{}.lookup))
	require.Error(t, err)
}

func TestConfigClone(t *testing.T) {
	a := Config{Resources: []string{"r"}, Bindings: []ResourceBinding{{"r", "http://r"}}}
	b := a.clone()
	b.Resources[0] = "changed"
	b.Bindings[0].ResourceID = "changed"
	assert.Equal(t, "r", a.Resources[0])
	assert.Equal(t, "r", a.Bindings[0].ResourceID)
}

func TestConfigNeverShowsSecrets(t *testing.T) {
	cases := []Config{
		{ZoneID: "z", ApplicationID: "a", ClientSecret: testSecret, STSURL: "https://user:urlpass@sts", Bindings: []ResourceBinding{{"r", "http://r"}}},
		{ZoneID: "z", ApplicationID: "a", BootstrapToken: testSecret, Resources: []string{"r"}},
	}
	for i, cfg := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			outputs := map[string]string{
				"String": cfg.String(), "GoString": cfg.GoString(),
			}
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d", "%x", "%10.3v", "%T %v"} {
				outputs[verb] = fmt.Sprintf(verb, cfg)
				outputs["pointer "+verb] = fmt.Sprintf(verb, &cfg)
			}
			outputs["in a slice"] = fmt.Sprintf("%v %+v %#v", []Config{cfg}, []Config{cfg}, []Config{cfg})
			outputs["in a struct"] = fmt.Sprintf("%v %+v %#v", struct{ C Config }{cfg}, struct{ C Config }{cfg}, struct{ C Config }{cfg})
			outputs["error"] = fmt.Errorf("wrapped: %v", cfg).Error()
			var text, js bytes.Buffer
			slog.New(slog.NewTextHandler(&text, nil)).Info("cfg", "config", cfg, "ptr", &cfg)
			slog.New(slog.NewJSONHandler(&js, nil)).Info("cfg", "config", cfg)
			outputs["slog text"], outputs["slog json"] = text.String(), js.String()
			for name, out := range outputs {
				assert.NotContains(t, out, testSecret, name)
				assert.NotContains(t, out, "urlpass", name)
			}
			for _, name := range []string{"String", "%v", "%+v", "%#v", "slog text", "slog json"} {
				assert.Contains(t, outputs[name], redacted, name)
			}
			assert.Contains(t, outputs["%v"], `ZoneID: "z"`)
			assert.Contains(t, outputs["%#v"], `caracal.Config{ZoneID:"z"`)
			assert.Contains(t, outputs["slog json"], `"zone_id":"z"`)
		})
	}
	// An unset secret shows as empty, not as "[redacted]".
	s := Config{ZoneID: "z"}.String()
	assert.Contains(t, s, `ClientSecret: ""`)
	assert.NotContains(t, s, redacted)
}

func runtimeGOOS() string { return runtime.GOOS }

func TestRedactURL(t *testing.T) {
	assert.Equal(t, "https://u:xxxxx@h/p", redactURL("https://u:pw@h/p"))
	assert.Equal(t, "https://h/p", redactURL("https://h/p"))
	assert.Equal(t, "https://h/@user", redactURL("https://h/@user"))
	assert.Equal(t, "http://xxxxx@h:bad", redactURL("http://u:pw@h:bad"))
	assert.Equal(t, "xxxxx@h%zz", redactURL("u:pw@h%zz"))
}

func TestClientFormatHidesSecret(t *testing.T) {
	c, err := NewFromConfig(Config{ZoneID: "z", ApplicationID: "a", ClientSecret: testSecret,
		STSURL: "https://s", CoordinatorURL: "https://c"})
	require.NoError(t, err)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x"} {
		out := fmt.Sprintf(verb, c)
		assert.NotContains(t, out, testSecret, verb)
		assert.Contains(t, out, "caracal.Client{", verb)
	}
	var nilClient *Client
	assert.Equal(t, "<nil>", fmt.Sprint(nilClient))
}

func TestLoadConfigDebugLogNamesSources(t *testing.T) {
	dir := t.TempDir()
	profile := writeFile(t, dir, "caracal.toml", "zone_id = \"z\"\napplication_id = \"a\"\napp_client_secret = \""+testSecret+"\"\nsts_url = \"https://sts.file\"\n", 0o600)
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, err := loadEnv(t, env{"CARACAL_CONFIG": profile, "CARACAL_COORDINATOR_URL": "https://coord.env"},
		WithLogger(log), WithGatewayURL("https://gw.opt"), WithDefaultTTL(time.Minute))
	require.NoError(t, err)
	out := logs.String()
	assert.NotContains(t, out, testSecret)
	assert.Contains(t, out, `"client_secret":"[redacted]"`)
	for _, want := range []string{
		`"zone_id":"` + profile + `: zone_id"`,
		`"credential":"` + profile + `: app_client_secret"`,
		`"sts_url":"` + profile + `: sts_url"`,
		`"coordinator_url":"CARACAL_COORDINATOR_URL"`,
		`"gateway_url":"WithGatewayURL"`,
		`"default_ttl_seconds":"WithDefaultTTL"`,
	} {
		assert.Contains(t, out, want)
	}
}

func TestLoadConfigEmptyOptions(t *testing.T) {
	for _, tc := range []struct {
		opt  Option
		want string
	}{
		{WithZone(" "), "caracal: WithZone: the zone id is empty"},
		{WithApplication(""), "caracal: WithApplication: the application id is empty"},
		{WithSTSURL(""), "caracal: WithSTSURL: the URL is empty"},
		{WithCoordinatorURL(""), "caracal: WithCoordinatorURL: the URL is empty"},
		{WithGatewayURL(""), "caracal: WithGatewayURL: the URL is empty"},
	} {
		_, err := loadEnv(t, baseEnv(), tc.opt)
		require.Error(t, err)
		assert.Contains(t, err.Error(), tc.want)
	}
}

func TestLoadConfigProfileChecksApplyWhenShadowed(t *testing.T) {
	dir := t.TempDir()
	// The inline secret in a group-readable profile is refused even though
	// the environment's secret would win: the file itself leaks it.
	profile := writeFile(t, dir, "caracal.toml", "zone_id = \"z\"\napplication_id = \"a\"\napp_client_secret = \"x\"\n", 0o640)
	_, err := loadEnv(t, baseEnv().with("CARACAL_CONFIG", profile))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "holds an inline app_client_secret but is readable by group or others")
}

func TestLoadConfigProfileWithBootstrapToken(t *testing.T) {
	// A profile without a secret plus CARACAL_BOOTSTRAP_TOKEN runs in
	// bootstrap-token mode: identity and URLs from the profile.
	dir := t.TempDir()
	profile := writeFile(t, dir, "caracal.toml", "zone_id = \"z\"\napplication_id = \"a\"\n", 0o600)
	cfg, err := loadEnv(t, env{"CARACAL_CONFIG": profile, "CARACAL_BOOTSTRAP_TOKEN": "opaque"})
	require.NoError(t, err)
	assert.Equal(t, "opaque", cfg.BootstrapToken)
	assert.Empty(t, cfg.ClientSecret)
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
	assert.Contains(t, err.Error(), "is not a regular file")
}

func TestLoadConfigResourcesMerge(t *testing.T) {
	dir := t.TempDir()
	profile := writeFile(t, dir, "caracal.toml", `zone_id = "z"
application_id = "a"
app_client_secret = "x"
[[credentials]]
resource = " resource://p "
[[optional_credentials]]
resource = "resource://shared"
`, 0o600)
	cfg, err := loadEnv(t, env{"CARACAL_CONFIG": profile, "CARACAL_APP_RESOURCES": "resource://e,resource://shared"},
		WithResources("resource://o", "resource://e"), WithResources("resource://o2"), WithBinding("resource://b", "http://b"))
	require.NoError(t, err)
	assert.Equal(t, []string{"resource://p", "resource://shared", "resource://e", "resource://o", "resource://o2"}, cfg.Resources)
	assert.Equal(t, []string{"resource://p", "resource://shared", "resource://e", "resource://o", "resource://o2", "resource://b"}, cfg.audience())
}
