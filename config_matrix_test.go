package caracal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// matrixRow is how one Config field is set from each source: a profile key,
// an environment variable and an option ("" or nil when the field has no
// such source). The values of a source are what the field reads; want*
// values are what it then holds. A want that is a wantErr is an error whose
// message must hold that text.
type matrixRow struct {
	name   string
	field  string   // the Config field
	remove []string // base profile keys this row replaces
	get    func(Config) any

	tomlKey string // names the profile source in errors ("" when none)
	file    string // TOML lines that set the field
	envVar  string
	env     string
	optName string
	opt     Option

	wantFile, wantEnv, wantOpt, wantDefault any
	// merged fields combine their sources instead of shadowing; wantAll is
	// the value with every source set.
	merged  bool
	wantAll any

	// emptyFile is the key with an empty value, and wantEmptyFile what it
	// means (the default, or an error).
	emptyFile     string
	wantEmptyFile any

	// Bad values, one per source ("" or nil: the source accepts anything).
	badFile string
	badEnv  string
	badOpt  Option
	// badFileAlways: a bad profile value fails the load even when a higher
	// source sets the field (the profile is decoded as a whole).
	badFileAlways bool
	// prodFile, prodEnv, prodOpt are values refused only in production.
	prodFile, prodEnv string
	prodOpt           Option
}

type wantErr string

// matrixBase is a valid profile, one key per line, so rows can drop keys.
var matrixBase = []string{
	`zone_id = "zone-base"`,
	`application_id = "app-base"`,
	`app_client_secret = "base-secret"`,
	`sts_url = "https://sts.base.example"`,
	`coordinator_url = "https://coord.base.example"`,
	`gateway_url = "https://gw.base.example"`,
}

func matrixRows(t *testing.T, dir string) []matrixRow {
	secret := func(name, content string) string { return writeFile(t, dir, name, content, 0o600) }
	leaky := writeFile(t, dir, "leaky-secret", testSecret, 0o640)
	expired := jwt(map[string]any{"alg": "ES256"}, map[string]any{"exp": 1})
	unsigned := jwt(map[string]any{"alg": "none"}, map[string]any{})
	bindingsFile := writeFile(t, dir, "bindings.json", `{"resource://r": "https://envfile.example"}`, 0o600)
	badBindingsFile := writeFile(t, dir, "bad-bindings.json", `{"resource://r": "ftp://envfile.example"}`, 0o600)
	urlRow := func(field, key, env, opt string, with func(string) Option, def string, get func(Config) any) matrixRow {
		return matrixRow{
			name: field, field: field, remove: []string{key}, get: get,
			tomlKey: key, file: key + ` = "https://file.example"`,
			envVar: env, env: "https://env.example",
			optName: opt, opt: with("https://opt.example"),
			wantFile: "https://file.example", wantEnv: "https://env.example", wantOpt: "https://opt.example", wantDefault: def,
			emptyFile: key + ` = ""`, wantEmptyFile: def,
			badFile: key + ` = "ftp://file.example"`, badEnv: "ftp://env.example", badOpt: with("ftp://opt.example"),
			prodFile: key + ` = "http://file.example"`, prodEnv: "http://env.example", prodOpt: with("http://opt.example"),
		}
	}
	return []matrixRow{
		{
			name: "ZoneID", field: "ZoneID", remove: []string{"zone_id"}, get: func(c Config) any { return c.ZoneID },
			tomlKey: "zone_id", file: `zone_id = "zone-file"`,
			envVar: "CARACAL_ZONE_ID", env: "zone-env",
			optName: "WithZone", opt: WithZone("zone-opt"),
			wantFile: "zone-file", wantEnv: "zone-env", wantOpt: "zone-opt", wantDefault: wantErr("zone_id is not set"),
			emptyFile: `zone_id = ""`, wantEmptyFile: wantErr("zone_id is not set"),
			badFile: `zone_id = 5`, badFileAlways: true, badEnv: "zone/../other", badOpt: WithZone(" "),
		},
		{
			name: "ApplicationID", field: "ApplicationID", remove: []string{"application_id"}, get: func(c Config) any { return c.ApplicationID },
			tomlKey: "application_id", file: `application_id = "app-file"`,
			envVar: "CARACAL_APPLICATION_ID", env: "app-env",
			optName: "WithApplication", opt: WithApplication("app-opt"),
			wantFile: "app-file", wantEnv: "app-env", wantOpt: "app-opt", wantDefault: wantErr("application_id is not set"),
			emptyFile: `application_id = ""`, wantEmptyFile: wantErr("application_id is not set"),
			badFile: `application_id = true`, badFileAlways: true, badOpt: WithApplication(""),
		},
		{
			name: "ClientSecret inline", field: "ClientSecret", remove: []string{"app_client_secret"}, get: func(c Config) any { return c.ClientSecret },
			tomlKey: "app_client_secret", file: `app_client_secret = "file-secret"`,
			envVar: "CARACAL_APP_CLIENT_SECRET", env: "env-secret",
			optName: "WithClientSecret", opt: WithClientSecret("opt-secret"),
			wantFile: "file-secret", wantEnv: "env-secret", wantOpt: "opt-secret", wantDefault: wantErr("no credential is configured"),
			emptyFile: `app_client_secret = ""`, wantEmptyFile: wantErr("app_client_secret is empty"),
			badFile: `app_client_secret = ""`, badOpt: WithClientSecret(""),
		},
		{
			name: "ClientSecret file", field: "ClientSecret", remove: []string{"app_client_secret"}, get: func(c Config) any { return c.ClientSecret },
			tomlKey: "app_client_secret_file", file: fmt.Sprintf("app_client_secret_file = %q", secret("file", "file-secret\n")),
			envVar: "CARACAL_APP_CLIENT_SECRET_FILE", env: secret("env", " env-secret "),
			optName: "WithClientSecretFile", opt: WithClientSecretFile(secret("opt", "opt-secret")),
			wantFile: "file-secret", wantEnv: "env-secret", wantOpt: "opt-secret", wantDefault: wantErr("no credential is configured"),
			emptyFile: `app_client_secret_file = ""`, wantEmptyFile: wantErr("app_client_secret_file is empty"),
			// §2.5 whatever the source: a secret file others can read is refused.
			badFile: fmt.Sprintf("app_client_secret_file = %q", leaky), badEnv: leaky, badOpt: WithClientSecretFile(leaky),
		},
		{
			name: "BootstrapToken", field: "BootstrapToken", remove: []string{"app_client_secret"}, get: func(c Config) any { return c.BootstrapToken },
			envVar: "CARACAL_BOOTSTRAP_TOKEN", env: "env-token",
			optName: "WithBootstrapToken", opt: WithBootstrapToken("opt-token"),
			wantEnv: "env-token", wantOpt: "opt-token", wantDefault: wantErr("no credential is configured"),
			// §2.7 whatever the source.
			badEnv: expired, badOpt: WithBootstrapToken(unsigned),
		},
		urlRow("STSURL", "sts_url", "CARACAL_STS_URL", "WithSTSURL", WithSTSURL, defaultSTSURL, func(c Config) any { return c.STSURL }),
		urlRow("CoordinatorURL", "coordinator_url", "CARACAL_COORDINATOR_URL", "WithCoordinatorURL", WithCoordinatorURL, defaultCoordinatorURL, func(c Config) any { return c.CoordinatorURL }),
		urlRow("GatewayURL", "gateway_url", "CARACAL_GATEWAY_URL", "WithGatewayURL", WithGatewayURL, defaultGatewayURL, func(c Config) any { return c.GatewayURL }),
		{
			name: "Resources", field: "Resources", get: func(c Config) any { return c.Resources },
			tomlKey: "credentials", file: "[[credentials]]\nresource = \"resource://file\"",
			envVar: "CARACAL_APP_RESOURCES", env: "resource://env",
			optName: "WithResources", opt: WithResources("resource://opt"),
			wantFile: []string{"resource://file"}, wantEnv: []string{"resource://env"}, wantOpt: []string{"resource://opt"}, wantDefault: []string(nil),
			merged: true, wantAll: []string{"resource://file", "resource://env", "resource://opt"},
			emptyFile: "[[credentials]]\nresource = \"\"", wantEmptyFile: wantErr("credentials[0]: resource is empty"),
			badFile: "[[credentials]]\nresource = \"\"", badOpt: WithResources(""),
		},
		{
			name: "Bindings", field: "Bindings", get: func(c Config) any { return c.Bindings },
			tomlKey: "credentials", file: "[[credentials]]\nresource = \"resource://r\"\nupstream_prefix = \"https://file.example\"",
			envVar: "CARACAL_RESOURCES", env: "resource://r=https://env.example",
			optName: "WithBinding", opt: WithBinding("resource://r", "https://opt.example"),
			wantFile: []ResourceBinding{{"resource://r", "https://file.example"}}, wantEnv: []ResourceBinding{{"resource://r", "https://env.example"}},
			wantOpt: []ResourceBinding{{"resource://r", "https://opt.example"}}, wantDefault: []ResourceBinding(nil),
			// The same resource from a later source replaces the binding.
			merged: true, wantAll: []ResourceBinding{{"resource://r", "https://opt.example"}},
			emptyFile: "[[credentials]]\nresource = \"resource://r\"\nupstream_prefix = \"\"", wantEmptyFile: []ResourceBinding(nil),
			badFile: "[[credentials]]\nresource = \"resource://r\"\nupstream_prefix = \"ftp://file.example\"", badFileAlways: true,
			badEnv: "resource://r=ftp://env.example", badOpt: WithBinding("resource://r", "ftp://opt.example"),
		},
		{
			name: "Bindings file", field: "Bindings", get: func(c Config) any { return c.Bindings },
			envVar: "CARACAL_RESOURCES_FILE", env: bindingsFile,
			wantEnv: []ResourceBinding{{"resource://r", "https://envfile.example"}}, wantDefault: []ResourceBinding(nil),
			merged: true, wantAll: []ResourceBinding{{"resource://r", "https://envfile.example"}},
			badEnv: badBindingsFile,
		},
		{
			name: "DefaultTTL", field: "DefaultTTL", get: func(c Config) any { return c.DefaultTTL },
			tomlKey: "default_ttl_seconds", file: `default_ttl_seconds = 600`,
			envVar: "CARACAL_DEFAULT_TTL_SECONDS", env: "120",
			optName: "WithDefaultTTL", opt: WithDefaultTTL(time.Hour),
			wantFile: 600 * time.Second, wantEnv: 120 * time.Second, wantOpt: time.Hour, wantDefault: time.Duration(0),
			emptyFile: `default_ttl_seconds = 0`, wantEmptyFile: time.Duration(0),
			badFile: `default_ttl_seconds = -1`, badEnv: "2m", badOpt: WithDefaultTTL(-time.Second),
		},
		{
			name: "Production", field: "Production", get: func(c Config) any { return c.Production },
			envVar: "CARACAL_ENV", env: "production", wantEnv: true, wantDefault: false,
		},
		{
			name: "AllowInsecureURLs", field: "AllowInsecureURLs", get: func(c Config) any { return c.AllowInsecureURLs },
			envVar: "CARACAL_ALLOW_INSECURE_CONFIG_URLS", env: "true", wantEnv: true, wantDefault: false,
		},
		{
			// Always loaded from CARACAL_CONFIG here; WithConfigFile is
			// checked in TestLoadConfigWithConfigFileBeatsCARACAL_CONFIG.
			name: "Profile", field: "Profile", get: func(c Config) any { return c.Profile != "" }, wantDefault: true,
		},
	}
}

// TestLoadConfigMatrix checks every Config field against every source it
// documents: each source alone sets it, the sources shadow (or merge) in the
// documented order, an empty variable counts as unset, an empty profile value
// means what LoadConfig says, and a bad value from each source fails the load
// with an error line that names that source and no other source of the field.
func TestLoadConfigMatrix(t *testing.T) {
	dir := t.TempDir()
	rows := matrixRows(t, dir)

	// Every field has a row, so a field added without its sources fails here.
	var fields []string
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		if f := ct.Field(i); f.IsExported() {
			fields = append(fields, f.Name)
		}
	}
	for _, f := range fields {
		assert.True(t, slices.ContainsFunc(rows, func(r matrixRow) bool { return r.field == f }), "Config.%s has no row in the matrix", f)
	}

	n := 0
	profile := func(r matrixRow, lines ...string) string {
		var keep []string
		for _, l := range matrixBase {
			if !slices.Contains(r.remove, strings.SplitN(l, " ", 2)[0]) {
				keep = append(keep, l)
			}
		}
		n++
		return writeFile(t, dir, fmt.Sprintf("p%d.toml", n), strings.Join(append(keep, lines...), "\n")+"\n", 0o600)
	}

	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			load := func(fileLines []string, e env, opts ...Option) (Config, string, error) {
				path := profile(r, fileLines...)
				cfg, err := loadEnv(t, e.with("CARACAL_CONFIG", path), opts...)
				return cfg, path, err
			}
			check := func(what string, want any, fileLines []string, e env, opts ...Option) {
				t.Helper()
				cfg, path, err := load(fileLines, e, opts...)
				if w, ok := want.(wantErr); ok {
					require.Error(t, err, what)
					assert.Contains(t, err.Error(), string(w), what)
					return
				}
				require.NoError(t, err, what)
				assert.Equal(t, want, r.get(cfg), what)
				assert.Equal(t, path, cfg.Profile, what)
			}
			var fileSet, envSet []string
			var optSet []Option
			if r.tomlKey != "" {
				fileSet = []string{r.file}
			}
			if r.envVar != "" {
				envSet = []string{r.envVar, r.env}
			}
			if r.optName != "" {
				optSet = []Option{r.opt}
			}

			check("no source", r.wantDefault, nil, env{})
			if r.tomlKey != "" {
				check("profile only", r.wantFile, fileSet, env{})
				check("profile, empty variable", r.wantFile, fileSet, env{}.with(r.envVar, ""))
				check("profile, blank variable", r.wantFile, fileSet, env{}.with(r.envVar, " \t"))
				check("empty profile value", r.wantEmptyFile, []string{r.emptyFile}, env{})
			}
			if r.envVar != "" {
				check("environment only", r.wantEnv, nil, env{}.with(envSet...))
				if r.tomlKey == "" {
					check("empty variable", r.wantDefault, nil, env{}.with(r.envVar, ""))
				}
			}
			if r.optName != "" {
				check("option only", r.wantOpt, nil, env{}, optSet...)
			}
			if r.merged {
				check("every source", r.wantAll, fileSet, env{}.with(envSet...), optSet...)
			} else {
				if r.tomlKey != "" && r.envVar != "" {
					check("environment over profile", r.wantEnv, fileSet, env{}.with(envSet...))
				}
				if r.optName != "" {
					check("option over environment and profile", r.wantOpt, fileSet, env{}.with(envSet...), optSet...)
					check("option over profile", r.wantOpt, fileSet, env{}, optSet...)
				}
			}

			// A bad value names its own source, and no other source of the field.
			names := map[string]string{"profile": r.tomlKey, "environment": r.envVar, "option": r.optName}
			bad := func(source string, fileLines []string, e env, opts ...Option) {
				t.Helper()
				_, path, err := load(fileLines, e, opts...)
				require.Error(t, err, "bad %s value", source)
				own := regexp.MustCompile(`\b` + regexp.QuoteMeta(names[source]) + `\b`)
				var line string
				for _, l := range strings.Split(err.Error(), "\n") {
					if own.MatchString(l) && (source != "profile" || strings.Contains(l, path)) {
						line = l
						break
					}
				}
				require.NotEmpty(t, line, "no error line names %s (%s): %v", names[source], source, err)
				for other, name := range names {
					if other != source && name != "" {
						assert.NotRegexp(t, `\b`+regexp.QuoteMeta(name)+`\b`, line, "a bad %s value is blamed on %s", source, name)
					}
				}
				assert.NotContains(t, err.Error(), testSecret)
			}
			if r.badFile != "" {
				bad("profile", []string{r.badFile}, env{})
				if !r.badFileAlways && !r.merged && r.envVar != "" {
					check("bad profile value shadowed by the environment", r.wantEnv, []string{r.badFile}, env{}.with(envSet...))
				}
			}
			if r.badEnv != "" {
				bad("environment", nil, env{}.with(r.envVar, r.badEnv))
				if !r.merged && r.optName != "" {
					check("bad variable shadowed by the option", r.wantOpt, nil, env{}.with(r.envVar, r.badEnv), optSet...)
				}
			}
			if r.badOpt != nil {
				bad("option", nil, env{}, r.badOpt)
			}
			// §2.6 whatever the source.
			prod := env{"CARACAL_ENV": "production"}
			if r.prodFile != "" {
				bad("profile", []string{r.prodFile}, prod)
				bad("environment", nil, prod.with(r.envVar, r.prodEnv))
				bad("option", nil, prod, r.prodOpt)
				check("production lifted", "http://env.example", nil, prod.with(r.envVar, r.prodEnv, "CARACAL_ALLOW_INSECURE_CONFIG_URLS", "true"))
			}
		})
	}
}

// TestLoadConfigMatrixNeverShowsSecrets loads the credential from each source
// and prints the Config every way a program might.
func TestLoadConfigMatrixNeverShowsSecrets(t *testing.T) {
	dir := t.TempDir()
	secretFile := writeFile(t, dir, "secret", testSecret, 0o600)
	id := env{"CARACAL_ZONE_ID": "z", "CARACAL_APPLICATION_ID": "a"}
	inline := writeFile(t, dir, "inline.toml", "app_client_secret = \""+testSecret+"\"\n", 0o600)
	byFile := writeFile(t, dir, "file.toml", fmt.Sprintf("app_client_secret_file = %q\n", secretFile), 0o600)
	cases := map[string]struct {
		env  env
		opts []Option
	}{
		"profile inline":       {id.with("CARACAL_CONFIG", inline), nil},
		"profile file":         {id.with("CARACAL_CONFIG", byFile), nil},
		"environment inline":   {id.with("CARACAL_APP_CLIENT_SECRET", testSecret), nil},
		"environment file":     {id.with("CARACAL_APP_CLIENT_SECRET_FILE", secretFile), nil},
		"environment token":    {id.with("CARACAL_BOOTSTRAP_TOKEN", testSecret), nil},
		"WithClientSecret":     {id, []Option{WithClientSecret(testSecret)}},
		"WithClientSecretFile": {id, []Option{WithClientSecretFile(secretFile)}},
		"WithBootstrapToken":   {id, []Option{WithBootstrapToken(testSecret)}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var logs bytes.Buffer
			cfg, err := loadEnv(t, tc.env, append(tc.opts, WithLogger(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))...)
			require.NoError(t, err)
			require.Contains(t, []string{cfg.ClientSecret, cfg.BootstrapToken}, testSecret)
			js, err := json.Marshal(cfg)
			require.NoError(t, err)
			for _, out := range []string{
				fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%s", cfg),
				fmt.Sprintf("%v", &cfg), fmt.Sprintf("%+v", &cfg), fmt.Sprintf("%#v", &cfg), fmt.Sprintf("%s", &cfg),
				string(js), logs.String(),
			} {
				assert.NotContains(t, out, testSecret)
				assert.Contains(t, out, redacted)
			}
		})
	}
}
