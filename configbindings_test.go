package caracal

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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

func TestNewFromConfigKeepsItsOwnSlices(t *testing.T) {
	resources := make([]string, 1, 4)
	resources[0] = "resource://a"
	bindings := []ResourceBinding{{"resource://b", "http://b"}}
	cfg := Config{ZoneID: "z", ApplicationID: "a", ClientSecret: testSecret, STSURL: "https://s",
		CoordinatorURL: "https://c", GatewayURL: "https://g", Resources: resources, Bindings: bindings}
	c, err := NewFromConfig(cfg, WithResources("resource://extra"))
	require.NoError(t, err)
	assert.Equal(t, "", resources[:2][1], "WithResources wrote into the caller's slice")

	// The caller reusing its slices does not change the client.
	resources[0] = "resource://changed"
	bindings[0].UpstreamPrefix = "http://changed"
	got := c.Config()
	assert.Equal(t, []string{"resource://a", "resource://extra"}, got.Resources)
	assert.Equal(t, []ResourceBinding{{"resource://b", "http://b"}}, got.Bindings)
}

// WithResources keeps the ids it was given: the caller reusing its slice
// after making the option does not change what the option adds.
func TestWithResourcesKeepsItsOwnIDs(t *testing.T) {
	ids := []string{"resource://a", "resource://b"}
	opt := WithResources(ids...)
	ids[0] = "resource://changed"
	cfg, err := loadEnv(t, baseEnv(), opt)
	require.NoError(t, err)
	assert.Equal(t, []string{"resource://a", "resource://b"}, cfg.Resources)
}

// TestLoadConfigBindingErrorsHideURLPasswords: a URL put where a resource
// identifier belongs (a CARACAL_RESOURCES entry that is a bare upstream URL
// whose query holds "=", arguments of WithBinding swapped, a profile or
// bindings file entry keyed by the URL) keeps its password out of the error.
func TestLoadConfigBindingErrorsHideURLPasswords(t *testing.T) {
	const pass = "hunter2-pw"
	url := "https://svc:" + pass + "@up.example/v1?tenant=acme"
	dir := t.TempDir()
	profile := writeFile(t, dir, "caracal.toml", fmt.Sprintf("zone_id = \"z\"\napplication_id = \"a\"\napp_client_secret = \"x\"\n[[credentials]]\nresource = %q\nupstream_prefix = \"ftp://x\"\n", url), 0o600)
	file := writeFile(t, dir, "bindings.json", fmt.Sprintf(`{%q: "ftp://x"}`, url), 0o600)
	notString := writeFile(t, dir, "numbers.json", fmt.Sprintf(`{%q: 1}`, url), 0o600)
	cases := map[string]struct {
		env  env
		opts []Option
	}{
		"CARACAL_RESOURCES":                             {baseEnv().with("CARACAL_RESOURCES", url), nil},
		"CARACAL_RESOURCES_FILE":                        {baseEnv().with("CARACAL_RESOURCES_FILE", file), nil},
		"CARACAL_RESOURCES_FILE, a prefix not a string": {baseEnv().with("CARACAL_RESOURCES_FILE", notString), nil},
		"profile credentials":                           {env{"CARACAL_CONFIG": profile}, nil},
		"WithBinding":                                   {baseEnv(), []Option{WithBinding(url, "resource://r")}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := loadEnv(t, tc.env, tc.opts...)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), pass)
			assert.Contains(t, err.Error(), "svc:xxxxx@up.example")
		})
	}
}

// A binding written the wrong way round (the upstream URL first) says it
// looks swapped, wherever it was written; one whose prefix is merely not a
// URL, with a resource id that is not one either, does not.
func TestLoadConfigSwappedBindingSaysSo(t *testing.T) {
	dir := t.TempDir()
	profile := writeFile(t, dir, "caracal.toml", "zone_id = \"z\"\napplication_id = \"a\"\napp_client_secret = \"x\"\n[[credentials]]\nresource = \"https://up.example/v1\"\nupstream_prefix = \"resource://x\"\n", 0o600)
	file := writeFile(t, dir, "bindings.json", `{"http://up.example": "resource://x"}`, 0o600)
	for name, tc := range map[string]struct {
		env  env
		opts []Option
	}{
		"CARACAL_RESOURCES":      {baseEnv().with("CARACAL_RESOURCES", "http://up.example=resource://x"), nil},
		"CARACAL_RESOURCES_FILE": {baseEnv().with("CARACAL_RESOURCES_FILE", file), nil},
		"profile credentials":    {env{"CARACAL_CONFIG": profile}, nil},
		"WithBinding":            {baseEnv(), []Option{WithBinding("http://up.example", "resource://x")}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadEnv(t, tc.env, tc.opts...)
			require.Error(t, err)
			assert.ErrorContains(t, err, "look swapped")
			assert.ErrorContains(t, err, "resource=upstream_prefix")
		})
	}
	_, err := loadEnv(t, baseEnv().with("CARACAL_RESOURCES", "resource://x=ftp://up.example"))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "swapped")
}
