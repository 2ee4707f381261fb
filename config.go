package caracal

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/caracal-go/caracal/internal/wire"
)

// Config is a complete client configuration. Its String, GoString, Format
// and LogValue methods never show a secret: ClientSecret and BootstrapToken
// appear as "[redacted]" when set and "" when not, and a URL's password (or
// its user part, when it has no password) and its query and fragment values
// are masked.
//
// LoadConfig (and New) builds a Config from four sources. For each key the
// first source that sets it wins:
//
//  1. explicit options (WithZone, WithSTSURL, ...; applied in order, so the
//     last of two options for the same key wins),
//  2. the CARACAL_* environment,
//  3. the profile file (caracal.toml),
//  4. defaults (the localhost service URLs, outside production only).
//
// A value shadowed by a higher source is neither read nor checked: a broken
// CARACAL_DEFAULT_TTL_SECONDS does not matter under WithDefaultTTL, and a
// secret file named by the profile is not opened when CARACAL_APP_CLIENT_SECRET
// is set. Checks of the profile file itself (its permissions, both secret
// keys set, unknown keys under WithStrictConfig) apply whenever it is loaded.
//
// The list-valued keys merge instead of shadowing. Resources are the
// profile's credential resources, then CARACAL_APP_RESOURCES, then
// WithResources, without repeats. Bindings are the profile's credentials
// that have an upstream_prefix, then CARACAL_RESOURCES_FILE, then
// CARACAL_RESOURCES, then WithBinding; a later binding for the same resource
// replaces an earlier one, and the result is sorted by prefix length,
// longest first (ties keep their order).
//
// The credential is one key: a client secret (inline or from an owner-only
// file) or a bootstrap token. A credential option (WithClientSecret,
// WithClientSecretFile, WithBootstrapToken) replaces the whole credential of
// the environment and the profile, so WithClientSecret also discards a
// CARACAL_BOOTSTRAP_TOKEN and vice versa, and a conflict among the lower
// sources is then not reported. Without such an option, a bootstrap token
// together with a client secret from the environment or the profile is an
// error (configure exactly one), and the environment's secret beats the
// profile's.
type Config struct {
	ZoneID        string
	ApplicationID string
	// ClientSecret authenticates the application at the STS. Exactly one of
	// ClientSecret and BootstrapToken is set.
	ClientSecret string
	// BootstrapToken is a pre-minted lifecycle token (static mode: it cannot
	// mint gateway mandates).
	BootstrapToken string

	STSURL         string
	CoordinatorURL string
	GatewayURL     string

	// Resources are extra resource identifiers for the lifecycle token's
	// audience. Every binding's resource is requested too, without being
	// listed here.
	Resources []string
	// Bindings route upstream URLs through the Gateway, longest prefix first.
	Bindings []ResourceBinding

	// DefaultTTL is the TTL of task sessions spawned without one, at most
	// 24 h; zero leaves it to the server (3600 s). It is sent in whole
	// seconds.
	DefaultTTL time.Duration

	// Production enables production gating (CARACAL_ENV=production): the
	// service URLs must be https unless their host is loopback.
	Production bool
	// AllowInsecureURLs lifts the https rule in production
	// (CARACAL_ALLOW_INSECURE_CONFIG_URLS=true).
	AllowInsecureURLs bool

	// Profile is the path of the profile file the configuration was loaded
	// from, or "" when none was used. It is informational.
	Profile string

	// opt is bookkeeping of the options applied to this value (which keys
	// they set, and the errors they met, such as an unreadable secret file).
	// load and Validate consume it; clone drops it.
	opt optState
}

// optState records what explicit options did to a Config.
type optState struct {
	set      keyMask
	credFrom string // name of the option that set the credential
	errs     []error
}

// keyMask names the scalar configuration keys an option can set.
type keyMask uint16

const (
	keyZone keyMask = 1 << iota
	keyApp
	keyCred
	keySTS
	keyCoord
	keyGateway
	keyTTL
)

// ResourceBinding routes requests whose URL starts with UpstreamPrefix through
// the Gateway as resource ResourceID (a resource identifier such as
// "resource://tickets").
type ResourceBinding struct {
	ResourceID     string
	UpstreamPrefix string
}

// Default service URLs, used outside production when no source sets one.
const (
	defaultSTSURL         = "http://localhost:8080"
	defaultCoordinatorURL = "http://localhost:4000"
	defaultGatewayURL     = "http://localhost:8081"
)

// Validate checks cfg as NewFromConfig does (and New, after loading): zone
// (an id the Coordinator takes in its paths) and application set, exactly
// one credential (a bootstrap token must pass the sanity checks of PROTOCOL
// §2.7), absolute http/https service URLs without a query or fragment (the
// Gateway URL may be empty when no binding needs it), no user:password in
// the Gateway URL or an upstream prefix, https in production unless
// loopback or AllowInsecureURLs, valid resources and bindings, and a
// DefaultTTL of zero or 1 s to 24 h. It also reports the errors of options
// applied to cfg (an unreadable WithClientSecretFile, say). Errors name the
// Config field; all problems are reported together.
func (cfg Config) Validate() error {
	var errs []error
	errs = append(errs, cfg.opt.errs...)
	if strings.TrimSpace(cfg.ZoneID) == "" {
		errs = append(errs, errors.New("caracal: Config.ZoneID is empty (set it to the zone's id)"))
	} else if err := checkZoneID("Config.ZoneID", cfg.ZoneID); err != nil {
		errs = append(errs, err)
	}
	if strings.TrimSpace(cfg.ApplicationID) == "" {
		errs = append(errs, errors.New("caracal: Config.ApplicationID is empty (set it to the application's id)"))
	}
	hasSecret, hasToken := strings.TrimSpace(cfg.ClientSecret) != "", strings.TrimSpace(cfg.BootstrapToken) != ""
	switch {
	case cfg.ClientSecret != "" && cfg.BootstrapToken != "":
		errs = append(errs, errors.New("caracal: Config.ClientSecret and Config.BootstrapToken are both set (configure exactly one credential)"))
	case !hasSecret && !hasToken:
		errs = append(errs, errors.New("caracal: neither Config.ClientSecret nor Config.BootstrapToken is set (configure exactly one credential)"))
	case cfg.BootstrapToken != "":
		if err := checkBootstrapToken("Config.BootstrapToken", cfg.BootstrapToken, time.Now()); err != nil {
			errs = append(errs, err)
		}
	}
	for _, u := range []struct{ name, val string }{
		{"Config.STSURL", cfg.STSURL},
		{"Config.CoordinatorURL", cfg.CoordinatorURL},
		{"Config.GatewayURL", cfg.GatewayURL},
	} {
		if u.val == "" {
			if u.name != "Config.GatewayURL" {
				errs = append(errs, fmt.Errorf("caracal: %s is empty (set it to the service's base URL)", u.name))
			}
			continue
		}
		if err := checkServiceURL(u.name, u.val, cfg.Production, cfg.AllowInsecureURLs); err != nil {
			errs = append(errs, err)
		} else if u.name == "Config.GatewayURL" {
			if err := checkNoUserinfo(u.name, u.val); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if cfg.GatewayURL == "" && len(cfg.Bindings) > 0 {
		errs = append(errs, errors.New("caracal: Config.GatewayURL is empty but Config.Bindings route through the Gateway (set it)"))
	}
	for i, r := range cfg.Resources {
		if strings.TrimSpace(r) == "" {
			errs = append(errs, fmt.Errorf("caracal: Config.Resources[%d] is empty", i))
		}
	}
	for i, b := range cfg.Bindings {
		if err := checkBinding(b.ResourceID, b.UpstreamPrefix); err != nil {
			errs = append(errs, fmt.Errorf("caracal: Config.Bindings[%d]: %w", i, err))
		}
	}
	if err := checkTTL("Config.DefaultTTL", cfg.DefaultTTL); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkZoneID refuses a zone id the Coordinator could not take in its
// paths (PROTOCOL Conventions), or one that is a dot segment, which a proxy
// on the way may resolve into another path: every call would fail.
func checkZoneID(name, id string) error {
	if !wire.ValidID(id) || id == "." || id == ".." {
		return fmt.Errorf("caracal: %s %.64q is not a zone id (1 to 128 letters, digits and _ . - :, not . or ..)", name, id)
	}
	return nil
}

// checkTTL accepts zero (server default) or a duration from a second to the
// Coordinator's limit of a day: a longer default would fail every Spawn.
func checkTTL(name string, d time.Duration) error {
	if d < 0 || (d > 0 && d < time.Second) || d > maxTTL {
		return fmt.Errorf("caracal: %s is %v; want 0 (the server default) or 1s to %v (the Coordinator's limit)", name, d, maxTTL)
	}
	return nil
}

// audience is the lifecycle token's resource set: Resources then every
// binding's resource, deduplicated, first occurrence wins.
func (cfg Config) audience() []string {
	seen := map[string]bool{}
	var out []string
	add := func(r string) {
		if r != "" && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	for _, r := range cfg.Resources {
		add(r)
	}
	for _, b := range cfg.Bindings {
		add(b.ResourceID)
	}
	return out
}

// clone returns a deep copy without the option bookkeeping.
func (cfg Config) clone() Config {
	cfg.Resources = append([]string(nil), cfg.Resources...)
	cfg.Bindings = append([]ResourceBinding(nil), cfg.Bindings...)
	cfg.opt = optState{}
	return cfg
}

// LoadConfig loads the configuration New would use, without creating a
// client: options, the CARACAL_* environment, a profile file and defaults,
// per key in that order (see Config).
//
// The profile is the file named by WithConfigFile, else by CARACAL_CONFIG; a
// named file must exist. Otherwise the first existing file of
// $CARACAL_CONFIG_HOME/caracal.toml, $XDG_CONFIG_HOME/caracal/caracal.toml
// and the OS user config directory's profile (~/.config/caracal/caracal.toml;
// ~/Library/Application Support/Caracal/caracal.toml on macOS;
// %APPDATA%\Caracal\caracal.toml on Windows) is used, and having none is
// fine. Every environment lookup, HOME and APPDATA included, goes through
// WithLookupEnv.
//
// Profile keys (PROTOCOL §2.3): zone_id, application_id, app_client_secret,
// app_client_secret_file (a relative path is relative to the profile's
// directory), sts_url, coordinator_url, gateway_url, default_ttl_seconds
// (0 means unset) and the credentials and optional_credentials arrays of
// {resource, upstream_prefix} tables. Profiles are shared with the Caracal
// CLI, which may add keys of its own, so unknown keys (a known key spelled
// in another case, such as ZONE_ID, included) are ignored and logged (with
// WithLogger) as one warning naming the file and the keys; WithStrictConfig
// makes them an error.
// Except on Windows, a profile writable by group or others is refused, and an
// inline app_client_secret requires a profile readable by its owner only.
// Secret files (CARACAL_APP_CLIENT_SECRET_FILE, app_client_secret_file,
// WithClientSecretFile) must exist, be readable by their owner only (except
// on Windows) and hold a non-empty secret; surrounding whitespace, and a
// leading UTF-8 byte order mark, are trimmed.
//
// Environment variables (PROTOCOL §2.2): CARACAL_CONFIG, CARACAL_ZONE_ID,
// CARACAL_APPLICATION_ID, CARACAL_APP_CLIENT_SECRET,
// CARACAL_APP_CLIENT_SECRET_FILE, CARACAL_BOOTSTRAP_TOKEN, CARACAL_STS_URL,
// CARACAL_COORDINATOR_URL, CARACAL_GATEWAY_URL, CARACAL_APP_RESOURCES
// (comma-separated resource identifiers), CARACAL_RESOURCES
// ("resource=upstream_prefix,..."), CARACAL_RESOURCES_FILE (a JSON object
// {"resource": "prefix"} or an array of {"resource_id", "upstream_prefix"}
// objects), CARACAL_DEFAULT_TTL_SECONDS (1 to 86400), CARACAL_ENV and
// CARACAL_ALLOW_INSECURE_CONFIG_URLS. Values are trimmed; an empty variable
// counts as unset. Older variables that v1 no longer reads
// (CARACAL_SUBJECT_TOKEN, CARACAL_ZONE_URL, ...) get a warning naming the
// replacement.
//
// A bootstrap token must be an RFC 6750 bearer token (letters, digits and
// "-._~+/", then any "=" padding); one that looks like a JWT must also not
// have alg "none" and must not be expired, and an opaque one is otherwise
// accepted as it is.
//
// CARACAL_ENV=production (exactly) turns on production gating: the three
// service URLs must be set explicitly (by an option, the environment or the
// profile), and each must be https unless its host is localhost or a loopback
// IP; another spelling of it (Production, prod) leaves gating off and logs a
// warning. CARACAL_ALLOW_INSECURE_CONFIG_URLS=true (exactly) lifts the https rule,
// and then each load that lets a plain-http URL through logs one warning.
// Every service URL and upstream prefix must be an absolute http or https URL
// with a host (and a port, if it names one, from 1 to 65535), in every mode,
// and the Gateway URL and upstream prefixes must not carry a user:password
// part (the Gateway routing refuses it), nor a service URL a query or
// fragment (request paths are appended to it); the https
// rule applies to the service URLs, which carry the application's
// credentials, not to upstream prefixes, which only select requests to route
// through the Gateway.
//
// Loading is all-or-nothing: on error the Config is zero, and the error joins
// every problem found, each naming its source (an environment variable, a
// profile file and key, or an option) and saying what to do. With a logger
// (WithLogger), a successful load logs the configuration, redacted, and the
// source of each key at debug level.
func LoadConfig(opts ...Option) (Config, error) {
	o := collect(opts)
	return load(&o)
}

// WithConfigFile names the profile file to load. It must exist. It takes
// precedence over CARACAL_CONFIG and the default profile locations.
func WithConfigFile(path string) Option {
	if strings.TrimSpace(path) == "" {
		return optErr(0, errors.New("caracal: WithConfigFile: the path is empty (name the profile to load, or leave the option out)"))
	}
	return func(o *options) { o.configFile = path }
}

// WithStrictConfig makes unknown profile keys an error instead of a warning.
func WithStrictConfig() Option {
	return func(o *options) { o.strict = true }
}

// override returns an Option that applies set to the Config after the other
// sources and records that the keys in k came from an option.
func override(k keyMask, set func(*Config)) Option {
	return func(o *options) {
		o.overrides = append(o.overrides, func(c *Config) {
			set(c)
			c.opt.set |= k
		})
	}
}

// optErr returns an Option that reports err when the configuration loads.
// The keys in k count as set by an option, refused value and all, so that
// the sources it shadows are not read: the load fails with err alone.
func optErr(k keyMask, err error) Option {
	return func(o *options) {
		o.overrides = append(o.overrides, func(c *Config) {
			c.opt.errs = append(c.opt.errs, err)
			c.opt.set |= k
		})
	}
}

// nonEmpty is the Option named name that sets key k to v with set, or
// reports that v (the option's what) is empty.
func nonEmpty(name, what, v string, k keyMask, set func(*Config)) Option {
	if strings.TrimSpace(v) == "" {
		return optErr(k, fmt.Errorf("caracal: %s: the %s is empty", name, what))
	}
	return override(k, set)
}

// WithZone sets the zone id (overrides CARACAL_ZONE_ID and zone_id).
func WithZone(id string) Option {
	return nonEmpty("WithZone", "zone id", id, keyZone, func(c *Config) { c.ZoneID = id })
}

// WithApplication sets the application id (overrides CARACAL_APPLICATION_ID
// and application_id).
func WithApplication(id string) Option {
	return nonEmpty("WithApplication", "application id", id, keyApp, func(c *Config) { c.ApplicationID = id })
}

// WithClientSecret sets the client secret. It replaces any credential from
// the environment or the profile, including a bootstrap token.
func WithClientSecret(secret string) Option {
	return credential("WithClientSecret", "secret", secret, "")
}

// credential is the Option named name that replaces the whole credential
// with a client secret or a bootstrap token (what names the one set).
func credential(name, what, secret, token string) Option {
	if strings.TrimSpace(secret) == "" && strings.TrimSpace(token) == "" {
		return optErr(keyCred, fmt.Errorf("caracal: %s: the %s is empty", name, what))
	}
	return override(keyCred, func(c *Config) {
		c.ClientSecret, c.BootstrapToken = secret, token
		c.opt.credFrom = name
	})
}

// WithClientSecretFile reads the client secret from path when the
// configuration loads. The file must exist and, except on Windows, be
// readable by its owner only; its content is trimmed and must not be empty.
// It replaces any credential from the environment or the profile, including
// a bootstrap token.
func WithClientSecretFile(path string) Option {
	return func(o *options) {
		o.overrides = append(o.overrides, func(c *Config) {
			secret, err := readSecretFile("WithClientSecretFile", path)
			if err != nil {
				c.opt.errs = append(c.opt.errs, err)
				c.opt.set |= keyCred
				return
			}
			c.ClientSecret, c.BootstrapToken = secret, ""
			c.opt.credFrom = "WithClientSecretFile"
			c.opt.set |= keyCred
		})
	}
}

// WithBootstrapToken runs the client on a static, pre-minted lifecycle token
// instead of a client secret (it cannot mint gateway mandates). It replaces
// any credential from the environment or the profile, including a client
// secret.
func WithBootstrapToken(token string) Option {
	return credential("WithBootstrapToken", "token", "", token)
}

// WithSTSURL sets the STS base URL.
func WithSTSURL(u string) Option {
	return nonEmpty("WithSTSURL", "URL", u, keySTS, func(c *Config) { c.STSURL = u })
}

// WithCoordinatorURL sets the Coordinator base URL.
func WithCoordinatorURL(u string) Option {
	return nonEmpty("WithCoordinatorURL", "URL", u, keyCoord, func(c *Config) { c.CoordinatorURL = u })
}

// WithGatewayURL sets the Gateway base URL.
func WithGatewayURL(u string) Option {
	return nonEmpty("WithGatewayURL", "URL", u, keyGateway, func(c *Config) { c.GatewayURL = u })
}

// WithResources adds resource identifiers to the lifecycle token's audience,
// after those of the profile and CARACAL_APP_RESOURCES.
func WithResources(ids ...string) Option {
	ids = append([]string(nil), ids...)
	for i, id := range ids {
		if strings.TrimSpace(id) == "" {
			return optErr(0, fmt.Errorf("caracal: WithResources: entry %d is empty", i+1))
		}
	}
	return override(0, func(c *Config) { c.Resources = append(c.Resources, ids...) })
}

// WithBinding routes URLs starting with upstreamPrefix (an absolute http or
// https URL) through the Gateway as resource resourceID. It replaces a binding
// for the same resource from any other source.
func WithBinding(resourceID, upstreamPrefix string) Option {
	if err := checkBinding(resourceID, upstreamPrefix); err != nil {
		return optErr(0, fmt.Errorf("caracal: WithBinding(%s, %s): %w", showURL(resourceID), showURL(upstreamPrefix), err))
	}
	b := ResourceBinding{ResourceID: resourceID, UpstreamPrefix: upstreamPrefix}
	return override(0, func(c *Config) { c.Bindings = mergeBindings(c.Bindings, []ResourceBinding{b}) })
}

// WithDefaultTTL sets the TTL of task sessions spawned without one
// (overrides CARACAL_DEFAULT_TTL_SECONDS and default_ttl_seconds). Zero
// leaves it to the server; otherwise it must be from a second to 24 h.
func WithDefaultTTL(d time.Duration) Option {
	if err := checkTTL("WithDefaultTTL", d); err != nil {
		return optErr(keyTTL, err)
	}
	return override(keyTTL, func(c *Config) { c.DefaultTTL = d })
}
