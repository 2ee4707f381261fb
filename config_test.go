package caracal

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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
		// The Gateway routing refuses a URL with userinfo; so does loading, naming the key.
		{"gateway userinfo", baseEnv().with("CARACAL_GATEWAY_URL", "https://svc:hunter2@gw.example"), nil, `caracal: CARACAL_GATEWAY_URL: "https://svc:xxxxx@gw.example" has a user:password part`},
		{"gateway userinfo option", baseEnv(), []Option{WithGatewayURL("https://svc@gw.example")}, `caracal: WithGatewayURL: "https://xxxxx@gw.example" has a user:password part`},
		{"binding userinfo", baseEnv().with("CARACAL_RESOURCES", "r=https://svc:hunter2@up.example"), nil, `caracal: CARACAL_RESOURCES: entry 1 "r": upstream prefix "https://svc:xxxxx@up.example" has a user:password part`},
		{"binding userinfo option", baseEnv(), []Option{WithBinding("r", "https://svc:hunter2@up.example")}, `upstream prefix "https://svc:xxxxx@up.example" has a user:password part`},
		{"sts userinfo", baseEnv().with("CARACAL_STS_URL", "https://svc:hunter2@sts.example"), nil, ""},
		// Request paths are appended to a service URL: a query or fragment would swallow them.
		{"query", baseEnv().with("CARACAL_STS_URL", "https://sts.example/?tenant=x"), nil, `caracal: CARACAL_STS_URL: "https://sts.example/?tenant=xxxxx" has a query or fragment`},
		{"empty query", baseEnv().with("CARACAL_COORDINATOR_URL", "https://coord.example?"), nil, `caracal: CARACAL_COORDINATOR_URL: "https://coord.example?" has a query or fragment`},
		{"fragment", baseEnv(), []Option{WithGatewayURL("https://gw.example#x")}, `caracal: WithGatewayURL: "https://gw.example#xxxxx" has a query or fragment`},
		{"path prefix", baseEnv().with("CARACAL_STS_URL", "https://edge.example/caracal-sts/"), nil, ""},
		// A port outside 1-65535 would make every call fail as if the
		// service were unavailable, without naming the key.
		{"port too large", baseEnv().with("CARACAL_STS_URL", "http://sts.example:99999"), nil, `caracal: CARACAL_STS_URL: "http://sts.example:99999" has port 99999`},
		{"port zero", baseEnv(), []Option{WithCoordinatorURL("https://coord.example:0/")}, `caracal: WithCoordinatorURL: "https://coord.example:0/" has port 0`},
		{"ipv6 port too large", baseEnv().with("CARACAL_GATEWAY_URL", "http://[::1]:65536"), nil, `caracal: CARACAL_GATEWAY_URL: "http://[::1]:65536" has port 65536`},
		{"upstream prefix port", baseEnv().with("CARACAL_RESOURCES", "r=https://up.example:70000/v1"), nil, `caracal: CARACAL_RESOURCES: entry 1 "r": upstream prefix "https://up.example:70000/v1" has port 70000`},
		{"highest port", baseEnv().with("CARACAL_STS_URL", "http://sts.example:65535"), nil, ""},
		{"empty port", baseEnv().with("CARACAL_STS_URL", "http://[::1]:"), nil, ""},
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
		// The user part of a URL is often a token (https://TOKEN@host).
		{"http refused, user part masked", urls.with("CARACAL_STS_URL", "http://tok3nUser@sts.example"), nil, []string{
			`caracal: CARACAL_STS_URL: http://xxxxx@sts.example is not https`,
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

// A value that reads as production but is not "production" leaves gating
// off, and says so; other values (development, staging) say nothing.
func TestLoadConfigNearProductionWarns(t *testing.T) {
	for env, warns := range map[string]bool{"prod": true, "PROD": true, "PRODUCTION": true, "staging": false, "development": false} {
		var logs bytes.Buffer
		cfg, err := loadEnv(t, baseEnv().with("CARACAL_ENV", env), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		require.NoError(t, err)
		assert.False(t, cfg.Production, env)
		assert.Equal(t, warns, strings.Contains(logs.String(), "production gating is off"), "%s: %s", env, logs.String())
	}
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
		{"zone not an id", func(c *Config) { c.ZoneID = "zone one" }, `caracal: Config.ZoneID "zone one" is not a zone id`},
		{"zone a dot segment", func(c *Config) { c.ZoneID = ".." }, `caracal: Config.ZoneID ".." is not a zone id`},
		{"application", func(c *Config) { c.ApplicationID = "" }, "caracal: Config.ApplicationID is empty"},
		{"no credential", func(c *Config) { c.ClientSecret = "" }, "neither Config.ClientSecret nor Config.BootstrapToken is set"},
		{"two credentials", func(c *Config) { c.BootstrapToken = "t" }, "Config.ClientSecret and Config.BootstrapToken are both set"},
		{"blank secret", func(c *Config) { c.ClientSecret = " \t" }, "neither Config.ClientSecret nor Config.BootstrapToken is set"},
		{"blank token", func(c *Config) { c.ClientSecret, c.BootstrapToken = "", "\n" }, "neither Config.ClientSecret nor Config.BootstrapToken is set"},
		{"bad token", func(c *Config) {
			c.ClientSecret, c.BootstrapToken = "", jwt(map[string]any{"alg": "none"}, nil)
		}, "caracal: Config.BootstrapToken: the token is unsigned"},
		{"token with a line break", func(c *Config) {
			c.ClientSecret, c.BootstrapToken = "", "a.b.c\n"
		}, "caracal: Config.BootstrapToken: the token has characters a bearer token cannot have"},
		{"no STS", func(c *Config) { c.STSURL = "" }, "caracal: Config.STSURL is empty"},
		{"bad coordinator", func(c *Config) { c.CoordinatorURL = "coord" }, `caracal: Config.CoordinatorURL: "coord" is not an absolute`},
		{"port out of range", func(c *Config) { c.STSURL = "https://sts.example:123456" }, `caracal: Config.STSURL: "https://sts.example:123456" has port 123456`},
		{"production http", func(c *Config) { c.Production, c.STSURL = true, "http://sts" }, "caracal: Config.STSURL: http://sts is not https"},
		{"bindings need a gateway", func(c *Config) { c.Bindings = []ResourceBinding{{"r", "http://r"}} }, "Config.GatewayURL is empty but Config.Bindings"},
		{"bad binding", func(c *Config) {
			c.GatewayURL, c.Bindings = "https://gw", []ResourceBinding{{"", "http://r"}}
		}, "caracal: Config.Bindings[0]: the resource id is empty"},
		{"gateway userinfo", func(c *Config) { c.GatewayURL = "https://u:p@gw" }, `caracal: Config.GatewayURL: "https://u:xxxxx@gw" has a user:password part`},
		{"coordinator query", func(c *Config) { c.CoordinatorURL = "https://coord?x=1" }, `caracal: Config.CoordinatorURL: "https://coord?x=xxxxx" has a query or fragment`},
		{"binding userinfo", func(c *Config) {
			c.GatewayURL, c.Bindings = "https://gw", []ResourceBinding{{"r", "http://u@r"}}
		}, `caracal: Config.Bindings[0]: upstream prefix "http://xxxxx@r" has a user:password part`},
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
