package caracal

import (
	"errors"
	"time"
)

// Config is a complete client configuration. Its String, GoString and
// LogValue methods never show a secret.
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
	// audience; every binding's resource is added automatically.
	Resources []string
	// Bindings route upstream URLs through the Gateway, longest prefix first.
	Bindings []ResourceBinding

	// DefaultTTL is the TTL of task sessions spawned without one; zero leaves
	// it to the server (3600 s).
	DefaultTTL time.Duration

	// Production enables production gating (CARACAL_ENV=production).
	Production bool
	// AllowInsecureURLs lifts the https rule in production.
	AllowInsecureURLs bool
}

// ResourceBinding routes requests whose URL starts with UpstreamPrefix through
// the Gateway as resource ResourceID (a resource identifier such as
// "resource://tickets").
type ResourceBinding struct {
	ResourceID     string
	UpstreamPrefix string
}

// Validate checks cfg as New would.
func (cfg Config) Validate() error {
	if cfg.ZoneID == "" {
		return errors.New("caracal: ZoneID is not set")
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

// clone returns a deep copy.
func (cfg Config) clone() Config {
	cfg.Resources = append([]string(nil), cfg.Resources...)
	cfg.Bindings = append([]ResourceBinding(nil), cfg.Bindings...)
	return cfg
}

// load builds the configuration from the file, the environment and options.
func load(o *options) (Config, error) {
	var cfg Config
	for _, set := range o.overrides {
		set(&cfg)
	}
	return cfg, cfg.Validate()
}
