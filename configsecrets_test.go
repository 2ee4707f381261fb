package caracal

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadConfigSecretFiles(t *testing.T) {
	dir := t.TempDir()
	ok := writeFile(t, dir, "ok", "\n\t"+testSecret+"  \n", 0o600)
	readOnly := writeFile(t, dir, "ro", testSecret, 0o400)
	// Windows PowerShell 5.1 writes UTF-8 files with a byte order mark.
	bom := writeFile(t, dir, "bom", "\ufeff"+testSecret+"\r\n", 0o600)
	groupRead := writeFile(t, dir, "group", testSecret, 0o640)
	worldRead := writeFile(t, dir, "world", testSecret, 0o604)
	empty := writeFile(t, dir, "empty", " \n\t\n", 0o600)
	// One byte over the cap: refused whole, never taken cut to the cap.
	tooLarge := writeFile(t, dir, "large", strings.Repeat("s", maxSecretSize+1), 0o600)
	missing := filepath.Join(dir, "missing")

	cases := []struct {
		name, path, wantErr string
	}{
		{"owner only, trimmed", ok, ""},
		{"read only", readOnly, ""},
		{"byte order mark", bom, ""},
		{"group readable", groupRead, "is accessible by group or others (mode 0640); run chmod 600 " + groupRead},
		{"world readable", worldRead, "(mode 0604)"},
		{"empty", empty, "secret file " + empty + " is empty"},
		{"too large", tooLarge, "secret file " + tooLarge + " is larger than"},
		{"missing", missing, "secret file " + missing + " does not exist"},
		{"directory", dir, "secret file " + dir + " is not a regular file (point it at the file that holds the client secret)"},
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
		{"blank WithClientSecret", id, []Option{WithClientSecret(" \t\n")}, "", "", "caracal: WithClientSecret: the secret is empty"},
		{"blank WithBootstrapToken", id, []Option{WithBootstrapToken("  ")}, "", "", "caracal: WithBootstrapToken: the token is empty"},
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
		{"line break inside", "a.b\nc", "characters a bearer token cannot have"},
		{"space inside", "opaque token", "characters a bearer token cannot have"},
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

// TestBootstrapTokenChecksReadExactClaimNames: JWT claim names are
// case-sensitive, so a header or payload that also carries "ALG" or "EXP"
// is judged by its "alg" and "exp", as the servers read them.
func TestBootstrapTokenChecksReadExactClaimNames(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	live := fmt.Sprint(time.Now().Add(time.Hour).Unix())
	cases := []struct{ name, header, claims, wantErr string }{
		{"alg none, ALG signed", `{"alg":"none","ALG":"ES256"}`, `{}`, "unsigned (alg none)"},
		{"exp past, EXP future", `{"alg":"ES256"}`, `{"exp":1,"EXP":` + live + `}`, "the token expired at 1970-01-01T00:00:01Z"},
		{"ALG none alone", `{"ALG":"none","alg":"ES256"}`, `{}`, ""},
		{"EXP past alone", `{"alg":"ES256"}`, `{"EXP":1,"exp":` + live + `}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			token := enc([]byte(tc.header)) + "." + enc([]byte(tc.claims)) + ".c2ln"
			err := checkBootstrapToken("CARACAL_BOOTSTRAP_TOKEN", token, time.Now())
			if tc.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
		})
	}
}

// A profile that holds both secret keys is refused for that alone: neither
// key is then read, so nothing else is said about them (such as one of them
// being empty, or clashing with CARACAL_BOOTSTRAP_TOKEN).
func TestLoadConfigProfileWithBothSecretKeysSaysOnlyThat(t *testing.T) {
	dir := t.TempDir()
	secretFile := writeFile(t, dir, "secret", testSecret, 0o600)
	both := "zone_id = \"z\"\napplication_id = \"a\"\napp_client_secret = \"\"\napp_client_secret_file = \"" + secretFile + "\"\n"
	path := writeFile(t, dir, "caracal.toml", both, 0o600)
	for name, e := range map[string]env{
		"profile only":         {"CARACAL_CONFIG": path},
		"with a bootstrap env": {"CARACAL_CONFIG": path, "CARACAL_BOOTSTRAP_TOKEN": "tok"},
	} {
		_, err := loadEnv(t, e)
		require.Error(t, err, name)
		assert.Equal(t, "caracal: "+path+": app_client_secret and app_client_secret_file are both set (keep one)", err.Error(), name)
	}
}
