package caracal

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzParseResources feeds CARACAL_RESOURCES through the parser and the whole
// loader: no panic, every accepted binding is valid, and neither an error nor
// the loaded Config's String shows the client secret.
func FuzzParseResources(f *testing.F) {
	for _, seed := range []string{
		"",
		"resource://tickets=http://tickets.internal",
		"a=http://a, b=https://b/x ,,",
		"x,=http://h,r=,r2=ftp://h,r3=/relative,r4=http://",
		"r=http://h/p?q=1=2",
		"r=http://u:pw@h:bad",
		"r=\x00http://h",
		"r=http://[::1",
		"r=" + testSecret,
		"résumé=http://ü.example",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		bindings, err := parseResources("CARACAL_RESOURCES", in)
		for _, b := range bindings {
			require.NoError(t, checkBinding(b.ResourceID, b.UpstreamPrefix))
		}
		if err == nil {
			entries := 0
			for _, e := range strings.Split(in, ",") {
				if strings.TrimSpace(e) != "" {
					entries++
				}
			}
			require.Len(t, bindings, entries)
		}

		if strings.Contains(in, testSecret) {
			return // the input itself may be echoed; it is not the secret
		}
		cfg, err := LoadConfig(WithLookupEnv(baseEnv().with("CARACAL_RESOURCES", in).lookup))
		if err != nil {
			require.NotContains(t, err.Error(), testSecret)
			return
		}
		require.NotContains(t, cfg.String(), testSecret)
		require.NotContains(t, cfg.GoString(), testSecret)
	})
}

// FuzzLoadProfile loads arbitrary profile content: no panic, and no error
// shows the client secret, whether it sits inline in the profile (on a line
// of its own before the fuzzed content) or comes from the environment.
func FuzzLoadProfile(f *testing.F) {
	for _, seed := range []string{
		"",
		"zone_id = \"z\"\napplication_id = \"a\"\n",
		fullProfile("secret"),
		"zone_id = \"z\"\napplication_id = \"a\"\nsts_url = \"nope\"\ndefault_ttl_seconds = -1\n",
		"app_client_secret = \"again\"\n",
		"app_client_secret_file = \"secret\"\n",
		"zone_id = 5\n",
		"zone_id = \"z\nbroken",
		"x = unquoted-value\n",
		"[[credentials]]\nresource = \"r\"\nupstream_prefix = \"gopher://x\"\n",
		"[[credentials]]\nupstream_prefix = \"http://x\"\n",
		"zone_url = \"http://old\"\nunknown = 1\n",
		"[table]\nkey = 'literal'\n",
		"a = \"\\u0000\"\n",
		"default_ttl_seconds = 9223372036854775807\n",
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, data string, strict bool) {
		if strings.Contains(data, testSecret) || secretInValues(data) {
			return
		}
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "secret"), []byte("file-secret"), 0o600))
		var opts []Option
		if strict {
			opts = append(opts, WithStrictConfig())
		}

		// Secret inline in the profile.
		path := filepath.Join(dir, "inline.toml")
		content := "app_client_secret = \"" + testSecret + "\"\n" + data
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		cfg, err := LoadConfig(append(opts, WithLookupEnv(env{"CARACAL_CONFIG": path}.lookup))...)
		if err != nil {
			assert.NotContains(t, err.Error(), testSecret)
			assert.Zero(t, cfg)
		} else {
			assert.NotContains(t, cfg.String(), testSecret)
		}

		// Secret in the environment, profile as fuzzed.
		path = filepath.Join(dir, "env.toml")
		require.NoError(t, os.WriteFile(path, []byte(data), 0o600))
		e := env{"CARACAL_CONFIG": path, "CARACAL_APP_CLIENT_SECRET": testSecret}
		cfg, err = LoadConfig(append(opts, WithLookupEnv(e.lookup))...)
		if err != nil {
			assert.NotContains(t, err.Error(), testSecret)
			assert.Zero(t, cfg)
		} else {
			assert.NotContains(t, cfg.String(), testSecret)
		}
	})
}

// secretInValues reports whether data decodes to a key or string value that
// contains testSecret (through escapes the raw check cannot see); such a
// profile puts the secret where echoing it is legitimate.
func secretInValues(data string) bool {
	var m map[string]any
	if _, err := toml.Decode(data, &m); err != nil {
		return false
	}
	var walk func(v any) bool
	walk = func(v any) bool {
		switch v := v.(type) {
		case string:
			return strings.Contains(v, testSecret)
		case map[string]any:
			for k, x := range v {
				if strings.Contains(k, testSecret) || walk(x) {
					return true
				}
			}
		case []map[string]any:
			for _, x := range v {
				if walk(x) {
					return true
				}
			}
		case []any:
			for _, x := range v {
				if walk(x) {
					return true
				}
			}
		}
		return false
	}
	return walk(m)
}
