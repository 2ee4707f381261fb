package caracal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
			for name, v := range map[string]any{"json": cfg, "json pointer": &cfg, "json in a struct": struct{ C Config }{cfg}} {
				b, err := json.Marshal(v)
				require.NoError(t, err, name)
				outputs[name] = string(b)
			}
			for name, out := range outputs {
				assert.NotContains(t, out, testSecret, name)
				assert.NotContains(t, out, "urlpass", name)
			}
			for _, name := range []string{"String", "%v", "%+v", "%#v", "slog text", "slog json", "json", "json pointer"} {
				assert.Contains(t, outputs[name], redacted, name)
			}
			assert.Contains(t, outputs["%v"], `ZoneID: "z"`)
			assert.Contains(t, outputs["%#v"], `caracal.Config{ZoneID:"z"`)
			assert.Contains(t, outputs["slog json"], `"zone_id":"z"`)
			assert.Contains(t, outputs["json"], `"zone_id":"z"`)
		})
	}
	// An unset secret shows as empty, not as "[redacted]".
	s := Config{ZoneID: "z"}.String()
	assert.Contains(t, s, `ClientSecret: ""`)
	assert.NotContains(t, s, redacted)
}

func runtimeGOOS() string { return runtime.GOOS }

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

// A token in a URL's query or fragment (?access_token=..., #token) is a
// secret too: neither a load error nor the printed or logged Config shows
// it, while the error still names the setting and the URL's place.
func TestConfigHidesURLQueryTokens(t *testing.T) {
	const tok = "qt0k3n-do-not-print"
	for _, tc := range []struct {
		name, key, val, want string
	}{
		{"query", "CARACAL_STS_URL", "https://sts.example.com/?access_token=" + tok, `CARACAL_STS_URL: "https://sts.example.com/?access_token=xxxxx" has a query or fragment`},
		{"bare query", "CARACAL_COORDINATOR_URL", "https://c.example.com/?" + tok, `CARACAL_COORDINATOR_URL: "https://c.example.com/?xxxxx" has a query or fragment`},
		{"fragment", "CARACAL_GATEWAY_URL", "https://g.example.com/#" + tok, `CARACAL_GATEWAY_URL: "https://g.example.com/#xxxxx" has a query or fragment`},
		{"not absolute", "CARACAL_STS_URL", "sts.example.com/?a=1&token=" + tok, `CARACAL_STS_URL: "sts.example.com/?a=xxxxx&token=xxxxx" is not an absolute`},
		{"bad binding", "CARACAL_RESOURCES", "r=up.example.com/?token=" + tok, `"up.example.com/?token=xxxxx" is not an absolute`},
		{"binding without resource", "CARACAL_RESOURCES", "=https://up.example.com/?token=" + tok, `entry 1 "=https://up.example.com/?token=xxxxx": want resource=upstream_prefix`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadEnv(t, baseEnv().with(tc.key, tc.val))
			require.Error(t, err)
			assert.NotContains(t, err.Error(), tok)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	t.Run("WithBinding", func(t *testing.T) {
		_, err := loadEnv(t, baseEnv(), WithBinding("r", "up.example.com/?token="+tok))
		require.Error(t, err)
		assert.NotContains(t, err.Error(), tok)
	})

	t.Run("loaded", func(t *testing.T) {
		var logs bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		cfg, err := loadEnv(t, baseEnv().with("CARACAL_RESOURCES", "r=https://up.example.com/api?token="+tok+"#"+tok), WithLogger(log))
		require.NoError(t, err)
		js, err := json.Marshal(cfg)
		require.NoError(t, err)
		var text bytes.Buffer
		slog.New(slog.NewTextHandler(&text, nil)).Info("cfg", "config", cfg)
		for name, out := range map[string]string{
			"debug log": logs.String(), "String": cfg.String(), "%#v": fmt.Sprintf("%#v", cfg),
			"json": string(js), "slog": text.String(),
		} {
			assert.NotContains(t, out, tok, name)
			assert.Contains(t, out, "https://up.example.com/api?token=xxxxx#xxxxx", name)
		}
		assert.Equal(t, "https://up.example.com/api?token="+tok+"#"+tok, cfg.Bindings[0].UpstreamPrefix, "the value itself is kept")
	})
}

// The warning about plain-http URLs let through in production is for a
// configuration in use: a load that fails, for whatever setting, lets
// nothing through and logs no such warning.
func TestLoadConfigInsecureURLWarningOnlyWhenLoaded(t *testing.T) {
	insecure := baseEnv().with("CARACAL_ENV", "production", "CARACAL_STS_URL", "http://sts.example",
		"CARACAL_COORDINATOR_URL", "https://coord.example", "CARACAL_GATEWAY_URL", "https://gw.example",
		"CARACAL_ALLOW_INSECURE_CONFIG_URLS", "true")
	for name, e := range map[string]env{
		"zone missing":  insecure.with("CARACAL_ZONE_ID", ""),
		"ttl invalid":   insecure.with("CARACAL_DEFAULT_TTL_SECONDS", "x"),
		"binding wrong": insecure.with("CARACAL_RESOURCES", "https://up.example"),
	} {
		var logs bytes.Buffer
		_, err := loadEnv(t, e, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		require.Error(t, err, name)
		assert.NotContains(t, logs.String(), "ALLOW_INSECURE", name)
	}
}
