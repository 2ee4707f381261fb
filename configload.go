package caracal

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
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
	// profileFailed is set when a profile was named or found but could not
	// be loaded; its error is already reported.
	profileFailed bool
	sources       []any // key, source pairs for the debug log
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
	return l.load()
}

func (l *loader) load() (Config, error) {
	var ov Config
	for _, set := range l.o.overrides {
		set(&ov)
	}
	l.errs = append(l.errs, ov.opt.errs...)

	l.deprecatedEnv()
	var cfg Config
	if env := l.getenv("CARACAL_ENV"); env == "production" {
		cfg.Production = true
	} else if strings.EqualFold(env, "production") || strings.EqualFold(env, "prod") {
		l.warn("caracal: CARACAL_ENV is not exactly \"production\"; production gating is off", "value", env)
	}
	cfg.AllowInsecureURLs = l.getenv("CARACAL_ALLOW_INSECURE_CONFIG_URLS") == "true"

	before := len(l.errs)
	l.loadProfile()
	l.profileFailed = l.profile == nil && len(l.errs) > before
	if l.profile != nil {
		cfg.Profile = l.profile.path
	}
	l.identity(&cfg, ov)
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
	insecure := l.serviceURLs(&cfg, ov)
	cfg.DefaultTTL = l.defaultTTL(ov)
	l.resources(&cfg, ov)

	if len(l.errs) > 0 {
		return Config{}, errors.Join(l.errs...)
	}
	// Every rule above is at least as strict as Validate; this catches a
	// rule added to Validate and forgotten here.
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	// Only a configuration in use lets a plain-http URL through.
	if len(insecure) > 0 {
		l.warn("caracal: CARACAL_ALLOW_INSECURE_CONFIG_URLS=true lets plain-http service URLs through in production", "urls", insecure)
	}
	if l.log != nil {
		l.log.Debug("caracal: configuration loaded", "config", cfg, slog.Group("sources", l.sources...))
	}
	return cfg, nil
}

// fromProfile is the loaded profile's data, zero when there is none.
func (l *loader) fromProfile() profileData {
	if l.profile == nil {
		return profileData{}
	}
	return l.profile.data
}

// profileKey names the profile key k for messages, "" when there is no
// profile.
func (l *loader) profileKey(k string) string {
	if l.profile == nil {
		return ""
	}
	return l.profile.key(k)
}

// identity resolves the zone and the application.
func (l *loader) identity(cfg *Config, ov Config) {
	pd := l.fromProfile()
	zone := l.scalar(ov.opt.set&keyZone != 0, ov.ZoneID, "WithZone", "CARACAL_ZONE_ID", pd.ZoneID, l.profileKey("zone_id"))
	app := l.scalar(ov.opt.set&keyApp != 0, ov.ApplicationID, "WithApplication", "CARACAL_APPLICATION_ID", pd.ApplicationID, l.profileKey("application_id"))
	cfg.ZoneID, cfg.ApplicationID = zone.val, app.val
	l.source("zone_id", zone.from)
	l.source("application_id", app.from)
	// A refused option (from set, value empty) has reported its error.
	if zone.val == "" && zone.from == "" {
		l.fail(l.missing("CARACAL_ZONE_ID", "zone_id", "WithZone"))
	} else if zone.val != "" {
		if err := checkZoneID(zone.from, zone.val); err != nil {
			l.fail(err)
		}
	}
	if app.val == "" && app.from == "" {
		l.fail(l.missing("CARACAL_APPLICATION_ID", "application_id", "WithApplication"))
	}
}

// serviceURLs resolves the STS, Coordinator and Gateway URLs, and returns
// the sources of those that are plain http in production.
func (l *loader) serviceURLs(cfg *Config, ov Config) (insecure []string) {
	pd := l.fromProfile()
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
	for _, u := range urls {
		s := l.scalar(u.set, u.ov, u.opt, u.env, u.pv, l.profileKey(u.pkey))
		switch {
		case s.val == "" && s.from != "":
			continue // a refused option, reported
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
		} else if err := checkNoUserinfo(s.from, s.val); u.pkey == "gateway_url" && err != nil {
			l.fail(err)
		} else if cfg.Production && insecureURL(s.val) {
			insecure = append(insecure, s.from)
		}
	}
	return insecure
}

// resources resolves the resources and the resource bindings.
func (l *loader) resources(cfg *Config, ov Config) {
	pd := l.fromProfile()
	var profBindings []ResourceBinding
	for _, list := range []struct {
		name  string
		creds []profileCredential
	}{{"credentials", pd.Credentials}, {"optional_credentials", pd.OptionalCredentials}} {
		for i, c := range list.creds {
			c.Resource, c.UpstreamPrefix = strings.TrimSpace(c.Resource), strings.TrimSpace(c.UpstreamPrefix)
			where := fmt.Sprintf("%s[%d]", list.name, i)
			if c.Resource == "" {
				l.failf("caracal: %s: %s: resource is empty (set it to the resource identifier)", l.profile.path, where)
				continue
			}
			cfg.Resources = append(cfg.Resources, c.Resource)
			if c.UpstreamPrefix == "" {
				continue
			}
			if err := checkBinding(c.Resource, c.UpstreamPrefix); err != nil {
				l.failf("caracal: %s: %s %s: %v", l.profile.path, where, showURL(c.Resource), err)
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
	if l.profileFailed {
		return fmt.Errorf("caracal: %s is not set, and the profile could not be loaded (see above)", envKey)
	}
	return fmt.Errorf("caracal: %s is not set (set it, or set CARACAL_CONFIG to a profile)", envKey)
}

// deprecatedEnv warns about older variables v1 no longer reads, so that a
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
	pd := l.fromProfile()

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
	switch {
	case l.profile != nil:
		where += ", or app_client_secret_file in " + l.profile.path
	case l.profileFailed:
		where += "; the profile could not be loaded"
	default:
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
