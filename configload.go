package caracal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/caracal-go/caracal/internal/wire"
)

// Size caps for the files the loader reads: they are small text files, and a
// cap keeps a misconfigured path (a device, a log file) from being slurped.
const (
	maxProfileSize  = 1 << 20
	maxSecretSize   = 64 << 10
	maxBindingsSize = 4 << 20
)

// profileData is the TOML profile (PROTOCOL §2.3). The secret keys are
// pointers so that a key present with an empty value is told apart from an
// absent one.
type profileData struct {
	ZoneID              string              `toml:"zone_id"`
	ApplicationID       string              `toml:"application_id"`
	AppClientSecret     *string             `toml:"app_client_secret"`
	AppClientSecretFile *string             `toml:"app_client_secret_file"`
	STSURL              string              `toml:"sts_url"`
	CoordinatorURL      string              `toml:"coordinator_url"`
	GatewayURL          string              `toml:"gateway_url"`
	DefaultTTLSeconds   int64               `toml:"default_ttl_seconds"`
	Credentials         []profileCredential `toml:"credentials"`
	OptionalCredentials []profileCredential `toml:"optional_credentials"`
}

type profileCredential struct {
	Resource       string `toml:"resource"`
	UpstreamPrefix string `toml:"upstream_prefix"`
}

// profile is a loaded profile file.
type profile struct {
	path string
	data profileData
}

// key names a profile key for messages: "<path>: <key>".
func (p *profile) key(k string) string { return p.path + ": " + k }

// loader carries one load's inputs.
type loader struct {
	o       *options
	env     func(string) (string, bool)
	log     *slog.Logger
	goos    string
	now     time.Time
	errs    []error
	profile *profile
	sources []any // key, source pairs for the debug log
}

func (l *loader) fail(err error) { l.errs = append(l.errs, err) }

func (l *loader) failf(format string, args ...any) { l.fail(fmt.Errorf(format, args...)) }

// getenv returns a trimmed variable; empty counts as unset.
func (l *loader) getenv(k string) string {
	v, _ := l.env(k)
	return strings.TrimSpace(v)
}

func (l *loader) warn(msg string, args ...any) {
	if l.log != nil {
		l.log.Warn(msg, args...)
	}
}

// setting is a resolved scalar and the name of its source.
type setting struct {
	val  string
	from string // "CARACAL_STS_URL", "<path>: sts_url", "WithSTSURL" or "" (unset)
}

// load builds the configuration from the options, the environment, the
// profile file and the defaults (see Config and LoadConfig).
func load(o *options) (Config, error) {
	l := &loader{o: o, env: o.lookupEnv, log: o.logger, goos: runtime.GOOS, now: time.Now()}
	if l.env == nil {
		l.env = os.LookupEnv
	}
	cfg, err := l.load()
	if err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func (l *loader) load() (Config, error) {
	var ov Config
	for _, set := range l.o.overrides {
		set(&ov)
	}
	l.errs = append(l.errs, ov.opt.errs...)

	l.deprecatedEnv()
	var cfg Config
	if env, _ := l.env("CARACAL_ENV"); env == "production" {
		cfg.Production = true
	} else if strings.EqualFold(strings.TrimSpace(env), "production") {
		l.warn("caracal: CARACAL_ENV is not exactly \"production\"; production gating is off", "value", env)
	}
	cfg.AllowInsecureURLs = l.getenv("CARACAL_ALLOW_INSECURE_CONFIG_URLS") == "true"

	l.loadProfile()
	p := l.profile
	if p != nil {
		cfg.Profile = p.path
	}
	pd := profileData{}
	if p != nil {
		pd = p.data
	}
	withProfile := func(k string) string {
		if p == nil {
			return ""
		}
		return p.key(k)
	}

	// Identity.
	zone := l.scalar(ov.opt.set&keyZone != 0, ov.ZoneID, "WithZone", "CARACAL_ZONE_ID", pd.ZoneID, withProfile("zone_id"))
	app := l.scalar(ov.opt.set&keyApp != 0, ov.ApplicationID, "WithApplication", "CARACAL_APPLICATION_ID", pd.ApplicationID, withProfile("application_id"))
	cfg.ZoneID, cfg.ApplicationID = zone.val, app.val
	l.source("zone_id", zone.from)
	l.source("application_id", app.from)
	if zone.val == "" {
		l.fail(l.missing("CARACAL_ZONE_ID", "zone_id", "WithZone"))
	}
	if app.val == "" {
		l.fail(l.missing("CARACAL_APPLICATION_ID", "application_id", "WithApplication"))
	}

	// Credential.
	if ov.opt.set&keyCred != 0 {
		cfg.ClientSecret, cfg.BootstrapToken = ov.ClientSecret, ov.BootstrapToken
		l.source("credential", ov.opt.credFrom)
		if cfg.BootstrapToken != "" {
			if err := checkBootstrapToken(ov.opt.credFrom, cfg.BootstrapToken, l.now); err != nil {
				l.fail(err)
			}
		}
	} else if !l.profileHasBothSecrets() {
		cfg.ClientSecret, cfg.BootstrapToken = l.credential()
	}

	// Service URLs.
	urls := []struct {
		set                    bool
		ov, opt, env, pv, pkey string
		def                    string
		dst                    *string
	}{
		{ov.opt.set&keySTS != 0, ov.STSURL, "WithSTSURL", "CARACAL_STS_URL", pd.STSURL, "sts_url", defaultSTSURL, &cfg.STSURL},
		{ov.opt.set&keyCoord != 0, ov.CoordinatorURL, "WithCoordinatorURL", "CARACAL_COORDINATOR_URL", pd.CoordinatorURL, "coordinator_url", defaultCoordinatorURL, &cfg.CoordinatorURL},
		{ov.opt.set&keyGateway != 0, ov.GatewayURL, "WithGatewayURL", "CARACAL_GATEWAY_URL", pd.GatewayURL, "gateway_url", defaultGatewayURL, &cfg.GatewayURL},
	}
	var insecure []string
	for _, u := range urls {
		s := l.scalar(u.set, u.ov, u.opt, u.env, u.pv, withProfile(u.pkey))
		switch {
		case s.val == "" && cfg.Production:
			l.failf("caracal: %s is required when CARACAL_ENV=production (set it, set %s in the profile, or use %s)", u.env, u.pkey, u.opt)
			continue
		case s.val == "":
			s = setting{u.def, "default " + u.env}
		}
		*u.dst = s.val
		l.source(u.pkey, s.from)
		if err := checkServiceURL(s.from, s.val, cfg.Production, cfg.AllowInsecureURLs); err != nil {
			l.fail(err)
		} else if cfg.Production && insecureURL(s.val) {
			insecure = append(insecure, s.from)
		}
	}
	if len(insecure) > 0 && len(l.errs) == 0 {
		l.warn("caracal: CARACAL_ALLOW_INSECURE_CONFIG_URLS=true lets plain-http service URLs through in production", "urls", insecure)
	}

	// Default TTL.
	cfg.DefaultTTL = l.defaultTTL(ov)

	// Resources and bindings.
	var profBindings []ResourceBinding
	for _, list := range []struct {
		name  string
		creds []profileCredential
	}{{"credentials", pd.Credentials}, {"optional_credentials", pd.OptionalCredentials}} {
		for i, c := range list.creds {
			c.Resource, c.UpstreamPrefix = strings.TrimSpace(c.Resource), strings.TrimSpace(c.UpstreamPrefix)
			where := fmt.Sprintf("%s[%d]", list.name, i)
			if c.Resource == "" {
				l.failf("caracal: %s: %s: resource is empty (set it to the resource identifier)", p.path, where)
				continue
			}
			cfg.Resources = append(cfg.Resources, c.Resource)
			if c.UpstreamPrefix == "" {
				continue
			}
			if err := checkBinding(c.Resource, c.UpstreamPrefix); err != nil {
				l.failf("caracal: %s: %s %q: %v", p.path, where, c.Resource, err)
				continue
			}
			profBindings = append(profBindings, ResourceBinding{c.Resource, c.UpstreamPrefix})
		}
	}
	if v := l.getenv("CARACAL_APP_RESOURCES"); v != "" {
		for _, r := range strings.Split(v, ",") {
			if r = strings.TrimSpace(r); r != "" {
				cfg.Resources = append(cfg.Resources, r)
			}
		}
	}
	cfg.Resources = dedupe(append(cfg.Resources, ov.Resources...))

	var fileBindings, envBindings []ResourceBinding
	if path := l.getenv("CARACAL_RESOURCES_FILE"); path != "" {
		bs, err := readBindingsFile(path)
		if err != nil {
			l.fail(err)
		}
		fileBindings = bs
	}
	if v, _ := l.env("CARACAL_RESOURCES"); v != "" {
		bs, err := parseResources("CARACAL_RESOURCES", v)
		if err != nil {
			l.fail(err)
		}
		envBindings = bs
	}
	cfg.Bindings = mergeBindings(profBindings, fileBindings, envBindings, ov.Bindings)

	if len(l.errs) > 0 {
		return Config{}, errors.Join(l.errs...)
	}
	if l.log != nil {
		l.log.Debug("caracal: configuration loaded", "config", cfg, slog.Group("sources", l.sources...))
	}
	// Every rule above is at least as strict as Validate; this catches a
	// rule added to Validate and forgotten here.
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// source records where a key's value came from, for the debug log.
func (l *loader) source(key, from string) {
	if from != "" {
		l.sources = append(l.sources, slog.String(key, from))
	}
}

// scalar resolves one scalar key by precedence: option, environment, profile.
func (l *loader) scalar(optSet bool, optVal, optName, envKey, profVal, profKey string) setting {
	if optSet {
		return setting{optVal, optName}
	}
	if v := l.getenv(envKey); v != "" {
		return setting{v, envKey}
	}
	if profKey != "" && strings.TrimSpace(profVal) != "" {
		return setting{strings.TrimSpace(profVal), profKey}
	}
	return setting{}
}

// missing is the error for an unset required key, saying where to set it.
func (l *loader) missing(envKey, profKey, opt string) error {
	if l.profile != nil {
		return fmt.Errorf("caracal: %s is not set in %s and %s is not set (set one of them, or use %s)", profKey, l.profile.path, envKey, opt)
	}
	return fmt.Errorf("caracal: %s is not set (set it, or set CARACAL_CONFIG to a profile)", envKey)
}

// deprecatedEnv warns about seed-era variables v1 no longer reads, so that a
// user who sets them learns why they have no effect.
func (l *loader) deprecatedEnv() {
	for _, d := range [][2]string{
		{"CARACAL_SUBJECT_TOKEN", "CARACAL_BOOTSTRAP_TOKEN"},
		{"CARACAL_ZONE_URL", "CARACAL_STS_URL"},
		{"CARACAL_RUN_CREDENTIALS", "CARACAL_APP_CLIENT_SECRET"},
		{"CARACAL_RUN_CREDENTIALS_FILE", "CARACAL_APP_CLIENT_SECRET_FILE"},
	} {
		if l.getenv(d[0]) != "" {
			l.warn("caracal: "+d[0]+" is no longer read; use "+d[1], "variable", d[0])
		}
	}
}

// profileHasBothSecrets reports the conflict loadProfile already reported;
// the credential is then not resolved further.
func (l *loader) profileHasBothSecrets() bool {
	return l.profile != nil && l.profile.data.AppClientSecret != nil && l.profile.data.AppClientSecretFile != nil
}

// credential resolves the credential from the environment and the profile.
// The environment's client secret beats the profile's; a bootstrap token
// with any client secret is an error.
func (l *loader) credential() (secret, token string) {
	envSecret := l.getenv("CARACAL_APP_CLIENT_SECRET")
	envFile := l.getenv("CARACAL_APP_CLIENT_SECRET_FILE")
	envToken := l.getenv("CARACAL_BOOTSTRAP_TOKEN")
	pd := profileData{}
	if l.profile != nil {
		pd = l.profile.data
	}

	var secretFrom string
	switch {
	case envSecret != "" && envFile != "":
		l.fail(errors.New("caracal: CARACAL_APP_CLIENT_SECRET and CARACAL_APP_CLIENT_SECRET_FILE are both set (unset one)"))
		return "", ""
	case envSecret != "":
		secretFrom = "CARACAL_APP_CLIENT_SECRET"
	case envFile != "":
		secretFrom = "CARACAL_APP_CLIENT_SECRET_FILE"
	case pd.AppClientSecret != nil:
		secretFrom = l.profile.key("app_client_secret")
	case pd.AppClientSecretFile != nil:
		secretFrom = l.profile.key("app_client_secret_file")
	}

	if envToken != "" {
		if secretFrom != "" {
			l.failf("caracal: CARACAL_BOOTSTRAP_TOKEN and %s are both set (configure exactly one credential)", secretFrom)
			return "", ""
		}
		if err := checkBootstrapToken("CARACAL_BOOTSTRAP_TOKEN", envToken, l.now); err != nil {
			l.fail(err)
			return "", ""
		}
		l.source("credential", "CARACAL_BOOTSTRAP_TOKEN")
		return "", envToken
	}

	var err error
	switch {
	case envSecret != "":
		secret = envSecret
	case envFile != "":
		secret, err = readSecretFile("CARACAL_APP_CLIENT_SECRET_FILE", envFile)
	case pd.AppClientSecret != nil:
		secret = strings.TrimSpace(*pd.AppClientSecret)
		if secret == "" {
			err = fmt.Errorf("caracal: %s is empty (set the secret, or use app_client_secret_file)", secretFrom)
		}
	case pd.AppClientSecretFile != nil:
		path := strings.TrimSpace(*pd.AppClientSecretFile)
		if path == "" {
			err = fmt.Errorf("caracal: %s is empty (set it to the secret file's path)", secretFrom)
			break
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(l.profile.path), path)
		}
		secret, err = readSecretFile(secretFrom, path)
	default:
		err = l.noCredential()
	}
	if err != nil {
		l.fail(err)
		return "", ""
	}
	l.source("credential", secretFrom)
	return secret, ""
}

func (l *loader) noCredential() error {
	where := "CARACAL_APP_CLIENT_SECRET_FILE, CARACAL_APP_CLIENT_SECRET or CARACAL_BOOTSTRAP_TOKEN"
	if l.profile != nil {
		where += ", or app_client_secret_file in " + l.profile.path
	} else {
		where += ", or set CARACAL_CONFIG to a profile"
	}
	return errors.New("caracal: no credential is configured (set " + where + ")")
}

// defaultTTL resolves the default task TTL.
func (l *loader) defaultTTL(ov Config) time.Duration {
	if ov.opt.set&keyTTL != 0 {
		l.source("default_ttl_seconds", "WithDefaultTTL")
		return ov.DefaultTTL
	}
	if v := l.getenv("CARACAL_DEFAULT_TTL_SECONDS"); v != "" {
		l.source("default_ttl_seconds", "CARACAL_DEFAULT_TTL_SECONDS")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			l.failf("caracal: CARACAL_DEFAULT_TTL_SECONDS is %q; want a positive whole number of seconds", v)
			return 0
		}
		return l.seconds("CARACAL_DEFAULT_TTL_SECONDS", n)
	}
	if l.profile != nil {
		n := l.profile.data.DefaultTTLSeconds
		if n < 0 {
			l.failf("caracal: %s is %d; want a positive whole number of seconds (or 0 for the server default)", l.profile.key("default_ttl_seconds"), n)
			return 0
		}
		if n > 0 {
			l.source("default_ttl_seconds", l.profile.key("default_ttl_seconds"))
		}
		return l.seconds(l.profile.key("default_ttl_seconds"), n)
	}
	return 0
}

func (l *loader) seconds(from string, n int64) time.Duration {
	if limit := int64(maxTTL / time.Second); n > limit {
		l.failf("caracal: %s is %d seconds, which is too large; the Coordinator accepts at most %d (24 h)", from, n, limit)
		return 0
	}
	return time.Duration(n) * time.Second
}

// profilePath finds the profile: the named one (option, then CARACAL_CONFIG)
// or the first existing default location. named reports whether the file
// was named explicitly (and so must exist).
func (l *loader) profilePath() (path, namedBy string) {
	if l.o.configFile != "" {
		return l.o.configFile, "WithConfigFile"
	}
	if v := l.getenv("CARACAL_CONFIG"); v != "" {
		return v, "CARACAL_CONFIG"
	}
	for _, c := range profileCandidates(l.goos, l.getenv) {
		if _, err := os.Stat(c); err == nil {
			return c, ""
		} else if !errors.Is(err, fs.ErrNotExist) {
			// Unreadable directory: report it through the normal load.
			return c, ""
		}
	}
	return "", ""
}

// profileCandidates lists the default profile locations in search order:
// $CARACAL_CONFIG_HOME/caracal.toml, $XDG_CONFIG_HOME/caracal/caracal.toml,
// then the OS user config directory (the one os.UserConfigDir would pick,
// computed from getenv so that tests control it).
func profileCandidates(goos string, getenv func(string) string) []string {
	var out []string
	if d := getenv("CARACAL_CONFIG_HOME"); d != "" {
		out = append(out, filepath.Join(d, "caracal.toml"))
	}
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		out = append(out, filepath.Join(d, "caracal", "caracal.toml"))
	}
	switch goos {
	case "windows":
		if d := getenv("APPDATA"); d != "" {
			out = append(out, filepath.Join(d, "Caracal", "caracal.toml"))
		}
	case "darwin", "ios":
		if h := getenv("HOME"); h != "" {
			out = append(out, filepath.Join(h, "Library", "Application Support", "Caracal", "caracal.toml"))
		}
	case "plan9":
		if h := getenv("home"); h != "" {
			out = append(out, filepath.Join(h, "lib", "caracal", "caracal.toml"))
		}
	default:
		if h := getenv("HOME"); h != "" {
			out = append(out, filepath.Join(h, ".config", "caracal", "caracal.toml"))
		}
	}
	return slices.Compact(out)
}

// loadProfile finds, checks and decodes the profile, if any.
func (l *loader) loadProfile() {
	path, namedBy := l.profilePath()
	if path == "" {
		return
	}
	f, err := os.Open(path)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist) && namedBy != "":
			l.fail(&wrapErr{fmt.Sprintf("caracal: %s names %s, which does not exist (create it, or point %s at an existing profile)", namedBy, path, namedBy), err})
		default:
			l.fail(&wrapErr{fmt.Sprintf("caracal: profile %s cannot be read: %v", path, errors.Unwrap(err)), err})
		}
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		l.fail(&wrapErr{fmt.Sprintf("caracal: profile %s cannot be read: %v", path, err), err})
		return
	}
	if !fi.Mode().IsRegular() {
		l.failf("caracal: profile %s is not a regular file", path)
		return
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxProfileSize+1))
	if err != nil {
		l.fail(&wrapErr{fmt.Sprintf("caracal: profile %s cannot be read: %v", path, err), err})
		return
	}
	if len(raw) > maxProfileSize {
		l.failf("caracal: profile %s is larger than %d bytes", path, maxProfileSize)
		return
	}
	p := &profile{path: path}
	md, err := toml.Decode(string(raw), &p.data)
	if err != nil {
		l.fail(tomlError(path, err))
		return
	}
	if perm := fi.Mode().Perm(); l.goos != "windows" {
		if perm&0o022 != 0 {
			l.failf("caracal: %s is writable by group or others (mode %04o); run chmod go-w %s", path, perm, path)
		}
		if p.data.AppClientSecret != nil && perm&0o077 != 0 {
			l.failf("caracal: %s holds an inline app_client_secret but is readable by group or others (mode %04o); run chmod 600 %s, or move the secret to app_client_secret_file", path, perm, path)
		}
	}
	if p.data.AppClientSecret != nil && p.data.AppClientSecretFile != nil {
		l.failf("caracal: %s: app_client_secret and app_client_secret_file are both set (keep one)", path)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		hint := ""
		if slices.Contains(keys, "zone_url") {
			hint = " (zone_url is no longer read; use sts_url)"
		}
		if l.o.strict {
			l.failf("caracal: %s: unknown keys %s%s (remove them, or drop WithStrictConfig)", path, strings.Join(keys, ", "), hint)
		} else {
			l.warn("caracal: profile has unknown keys; they are ignored"+hint, "file", path, "keys", keys)
		}
	}
	l.profile = p
}

// tomlQuoted matches the quoted fragments of a TOML parser message; they can
// hold a piece of the file, such as a secret written without quotes, so they
// never reach an error message.
var tomlQuoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'[^']*'`)

// knownProfileKeys are the keys a TOML error may name.
var knownProfileKeys = []string{
	"zone_id", "application_id", "app_client_secret", "app_client_secret_file", "sts_url",
	"coordinator_url", "gateway_url", "default_ttl_seconds", "credentials", "optional_credentials",
	"resource", "upstream_prefix",
}

// tomlError turns a TOML error into one that names the file and line but
// echoes nothing of the file's content.
func tomlError(path string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := tomlQuoted.ReplaceAllString(pe.Message, "…")
		key := ""
		if last := pe.LastKey; last != "" {
			parts := strings.Split(last, ".")
			if slices.Contains(knownProfileKeys, parts[len(parts)-1]) {
				key = fmt.Sprintf(" (key %s)", last)
			}
		}
		return &wrapErr{fmt.Sprintf("caracal: %s: line %d, column %d%s: invalid TOML: %s", path, pe.Position.Line, pe.Position.Col, key, msg), err}
	}
	return &wrapErr{fmt.Sprintf("caracal: %s: invalid TOML: %s", path, tomlQuoted.ReplaceAllString(err.Error(), "…")), err}
}

// readSecretFile reads a secret file under the rules of PROTOCOL §2.5: it
// must exist, be owner-only except on Windows, and hold a non-empty secret
// after trimming. from names the source for the error.
func readSecretFile(from, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", &wrapErr{fmt.Sprintf("caracal: %s: secret file %s does not exist (create it with mode 0600, or fix the path)", from, path), err}
		}
		return "", &wrapErr{fmt.Sprintf("caracal: %s: secret file %s cannot be read: %v", from, path, errors.Unwrap(err)), err}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", &wrapErr{fmt.Sprintf("caracal: %s: secret file %s cannot be read: %v", from, path, err), err}
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("caracal: %s: secret file %s is not a regular file", from, path)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return "", fmt.Errorf("caracal: %s: secret file %s is accessible by group or others (mode %04o); run chmod 600 %s", from, path, perm, path)
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxSecretSize+1))
	if err != nil {
		return "", &wrapErr{fmt.Sprintf("caracal: %s: secret file %s cannot be read: %v", from, path, err), err}
	}
	if len(raw) > maxSecretSize {
		return "", fmt.Errorf("caracal: %s: secret file %s is larger than %d bytes; it should hold only the secret", from, path, maxSecretSize)
	}
	secret := strings.TrimSpace(string(raw))
	if secret == "" {
		return "", fmt.Errorf("caracal: %s: secret file %s is empty (write the client secret into it)", from, path)
	}
	return secret, nil
}

// checkBootstrapToken applies PROTOCOL §2.7: a JWT-shaped token must not use
// alg "none" and must not be expired. Opaque tokens, and JWT-shaped ones whose
// parts do not decode, are accepted: the Coordinator has the last word.
func checkBootstrapToken(from, token string, now time.Time) error {
	var header struct {
		Alg any `json:"alg"`
	}
	if b, ok := wire.JWTPart(token, 0); ok && json.Unmarshal(b, &header) == nil {
		if alg, ok := header.Alg.(string); ok && strings.EqualFold(alg, "none") {
			return fmt.Errorf("caracal: %s: the token is unsigned (alg none) and is refused (use a signed lifecycle token from the STS)", from)
		}
	}
	var claims struct {
		Exp any `json:"exp"`
	}
	if b, ok := wire.JWTPart(token, 1); ok {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if d.Decode(&claims) == nil {
			if n, ok := claims.Exp.(json.Number); ok {
				if exp, err := n.Float64(); err == nil && exp <= float64(now.Unix()) {
					at := "a time out of range"
					if exp > -1e12 && exp < 1e12 {
						at = time.Unix(int64(exp), 0).UTC().Format(time.RFC3339)
					}
					return fmt.Errorf("caracal: %s: the token expired at %s (mint a fresh lifecycle token, or configure a client secret)", from, at)
				}
			}
		}
	}
	return nil
}

// parseResources parses CARACAL_RESOURCES: comma-separated
// "resource=upstream_prefix" entries; empty entries are skipped; every bad
// entry is reported, numbered from 1 by its position in the list.
func parseResources(from, v string) ([]ResourceBinding, error) {
	var out []ResourceBinding
	var errs []error
	for i, entry := range strings.Split(v, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		eq := strings.IndexByte(entry, '=')
		if eq <= 0 {
			// The entry may be a bare upstream URL with a password in it.
			errs = append(errs, fmt.Errorf("caracal: %s: entry %d %s: want resource=upstream_prefix", from, i+1, showURL(entry)))
			continue
		}
		rid, prefix := strings.TrimSpace(entry[:eq]), strings.TrimSpace(entry[eq+1:])
		if err := checkBinding(rid, prefix); err != nil {
			errs = append(errs, fmt.Errorf("caracal: %s: entry %d %q: %v", from, i+1, rid, err))
			continue
		}
		out = append(out, ResourceBinding{rid, prefix})
	}
	return out, errors.Join(errs...)
}

// readBindingsFile reads CARACAL_RESOURCES_FILE: a JSON object
// {"<resource>": "<prefix>"} (taken in key order) or an array of objects with
// exactly the keys resource_id and upstream_prefix.
func readBindingsFile(path string) ([]ResourceBinding, error) {
	const from = "CARACAL_RESOURCES_FILE"
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &wrapErr{fmt.Sprintf("caracal: %s: %s does not exist (create it, or unset %s)", from, path, from), err}
		}
		return nil, &wrapErr{fmt.Sprintf("caracal: %s: %s cannot be read: %v", from, path, errors.Unwrap(err)), err}
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxBindingsSize+1))
	if err != nil {
		return nil, &wrapErr{fmt.Sprintf("caracal: %s: %s cannot be read: %v", from, path, err), err}
	}
	if len(raw) > maxBindingsSize {
		return nil, fmt.Errorf("caracal: %s: %s is larger than %d bytes", from, path, maxBindingsSize)
	}
	return parseBindingsJSON(from+": "+path, raw)
}

// parseBindingsJSON parses the content of a bindings file; from names it.
func parseBindingsJSON(from string, raw []byte) ([]ResourceBinding, error) {
	raw = bytes.TrimSpace(raw)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("caracal: %s: "+format, append([]any{from}, args...)...)
	}
	switch {
	case len(raw) > 0 && raw[0] == '{':
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, bad("invalid JSON: %v", err)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var out []ResourceBinding
		var errs []error
		for _, k := range keys {
			prefix, ok := m[k].(string)
			if !ok {
				errs = append(errs, bad("entry %q: the upstream prefix is not a string", k))
				continue
			}
			if err := checkBinding(k, prefix); err != nil {
				errs = append(errs, bad("entry %q: %v", k, err))
				continue
			}
			out = append(out, ResourceBinding{k, prefix})
		}
		return out, errors.Join(errs...)
	case len(raw) > 0 && raw[0] == '[':
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, bad("invalid JSON: %v", err)
		}
		var out []ResourceBinding
		var errs []error
		for i, item := range list {
			var m map[string]any
			if err := json.Unmarshal(item, &m); err != nil || m == nil {
				errs = append(errs, bad("entry %d: want an object with resource_id and upstream_prefix", i+1))
				continue
			}
			var problems []string
			for k := range m {
				if k != "resource_id" && k != "upstream_prefix" {
					problems = append(problems, fmt.Sprintf("unknown key %q", k))
				}
			}
			sort.Strings(problems)
			rid, ridOK := m["resource_id"].(string)
			prefix, prefixOK := m["upstream_prefix"].(string)
			if !ridOK {
				problems = append(problems, "resource_id is missing or not a string")
			}
			if !prefixOK {
				problems = append(problems, "upstream_prefix is missing or not a string")
			}
			if ridOK && prefixOK {
				if err := checkBinding(rid, prefix); err != nil {
					problems = append(problems, err.Error())
				}
			}
			if len(problems) > 0 {
				errs = append(errs, bad("entry %d: %s", i+1, strings.Join(problems, "; ")))
				continue
			}
			out = append(out, ResourceBinding{rid, prefix})
		}
		return out, errors.Join(errs...)
	default:
		return nil, bad("want a JSON object {\"<resource>\": \"<upstream prefix>\"} or an array of {\"resource_id\", \"upstream_prefix\"} objects")
	}
}

// mergeBindings merges binding lists in order: a later binding for the same
// resource replaces the earlier one in place; the result is sorted by prefix
// length, longest first, ties kept in order.
func mergeBindings(lists ...[]ResourceBinding) []ResourceBinding {
	var out []ResourceBinding
	at := map[string]int{}
	for _, list := range lists {
		for _, b := range list {
			if i, ok := at[b.ResourceID]; ok {
				out[i] = b
				continue
			}
			at[b.ResourceID] = len(out)
			out = append(out, b)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].UpstreamPrefix) > len(out[j].UpstreamPrefix) })
	return out
}

// dedupe drops repeated strings, keeping the first occurrence.
func dedupe(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(in))
	out := in[:0:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// wrapErr is an error with its own message that still matches the cause
// (fs.ErrNotExist, ...) under errors.Is.
type wrapErr struct {
	msg string
	err error
}

func (e *wrapErr) Error() string { return e.msg }
func (e *wrapErr) Unwrap() error { return e.err }
