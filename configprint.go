package caracal

// This file prints a Config, and a Client, without their secrets.

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
)

const redacted = "[redacted]"

// secretState shows a secret field: "[redacted]" when set, "" when not.
func secretState(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}

// String describes cfg without its secrets.
func (cfg Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Config{ZoneID: %q, ApplicationID: %q, ClientSecret: %q, BootstrapToken: %q, ",
		cfg.ZoneID, cfg.ApplicationID, secretState(cfg.ClientSecret), secretState(cfg.BootstrapToken))
	fmt.Fprintf(&b, "STSURL: %q, CoordinatorURL: %q, GatewayURL: %q, Resources: %q, Bindings: [",
		printURL(cfg.STSURL), printURL(cfg.CoordinatorURL), printURL(cfg.GatewayURL), cfg.Resources)
	for i, bd := range cfg.Bindings {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%s", bd.ResourceID, printURL(bd.UpstreamPrefix))
	}
	fmt.Fprintf(&b, "], DefaultTTL: %v, Production: %t, AllowInsecureURLs: %t, Profile: %q}",
		cfg.DefaultTTL, cfg.Production, cfg.AllowInsecureURLs, cfg.Profile)
	return b.String()
}

// GoString is the %#v form: Go syntax with the secrets replaced by
// "[redacted]".
func (cfg Config) GoString() string {
	var b strings.Builder
	fmt.Fprintf(&b, "caracal.Config{ZoneID:%q, ApplicationID:%q, ClientSecret:%q, BootstrapToken:%q, ",
		cfg.ZoneID, cfg.ApplicationID, secretState(cfg.ClientSecret), secretState(cfg.BootstrapToken))
	fmt.Fprintf(&b, "STSURL:%q, CoordinatorURL:%q, GatewayURL:%q, Resources:%#v, Bindings:[]caracal.ResourceBinding{",
		printURL(cfg.STSURL), printURL(cfg.CoordinatorURL), printURL(cfg.GatewayURL), cfg.Resources)
	for i, bd := range cfg.Bindings {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "caracal.ResourceBinding{ResourceID:%q, UpstreamPrefix:%q}", bd.ResourceID, printURL(bd.UpstreamPrefix))
	}
	fmt.Fprintf(&b, "}, DefaultTTL:%d, Production:%t, AllowInsecureURLs:%t, Profile:%q}",
		int64(cfg.DefaultTTL), cfg.Production, cfg.AllowInsecureURLs, cfg.Profile)
	return b.String()
}

// Format makes every fmt verb (%v, %+v, %s, %q, %d, %x, ...) print String,
// and %#v print GoString, so that no verb reaches the secret fields.
func (cfg Config) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		_, _ = io.WriteString(f, cfg.GoString())
	case verb == 'q':
		_, _ = io.WriteString(f, strconv.Quote(cfg.String()))
	default:
		_, _ = io.WriteString(f, cfg.String())
	}
}

// LogValue is cfg as a slog group, secrets shown as "[redacted]" when set.
func (cfg Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("zone_id", cfg.ZoneID),
		slog.String("application_id", cfg.ApplicationID),
		slog.String("client_secret", secretState(cfg.ClientSecret)),
		slog.String("bootstrap_token", secretState(cfg.BootstrapToken)),
		slog.String("sts_url", printURL(cfg.STSURL)),
		slog.String("coordinator_url", printURL(cfg.CoordinatorURL)),
		slog.String("gateway_url", printURL(cfg.GatewayURL)),
		slog.Any("resources", append([]string(nil), cfg.Resources...)),
		slog.Any("bindings", cfg.redactedBindings()),
		slog.Duration("default_ttl", cfg.DefaultTTL),
		slog.Bool("production", cfg.Production),
		slog.Bool("allow_insecure_urls", cfg.AllowInsecureURLs),
		slog.String("profile", cfg.Profile),
	)
}

// MarshalJSON encodes cfg with its secrets shown as "[redacted]" when set,
// under the same keys as LogValue, so that json.Marshal of a Config (in a
// status page or a debug dump, say) cannot leak a credential. It is a view
// for people, not a format to load a Config from.
func (cfg Config) MarshalJSON() ([]byte, error) {
	resources := cfg.Resources
	if resources == nil {
		resources = []string{}
	}
	return json.Marshal(struct {
		ZoneID            string   `json:"zone_id"`
		ApplicationID     string   `json:"application_id"`
		ClientSecret      string   `json:"client_secret"`
		BootstrapToken    string   `json:"bootstrap_token"`
		STSURL            string   `json:"sts_url"`
		CoordinatorURL    string   `json:"coordinator_url"`
		GatewayURL        string   `json:"gateway_url"`
		Resources         []string `json:"resources"`
		Bindings          []string `json:"bindings"`
		DefaultTTL        string   `json:"default_ttl"`
		Production        bool     `json:"production"`
		AllowInsecureURLs bool     `json:"allow_insecure_urls"`
		Profile           string   `json:"profile"`
	}{
		cfg.ZoneID, cfg.ApplicationID, secretState(cfg.ClientSecret), secretState(cfg.BootstrapToken),
		printURL(cfg.STSURL), printURL(cfg.CoordinatorURL), printURL(cfg.GatewayURL),
		resources, cfg.redactedBindings(), cfg.DefaultTTL.String(), cfg.Production, cfg.AllowInsecureURLs, cfg.Profile,
	})
}

// redactedBindings lists the bindings as resource=prefix, without URL
// passwords.
func (cfg Config) redactedBindings() []string {
	bindings := make([]string, len(cfg.Bindings))
	for i, b := range cfg.Bindings {
		bindings[i] = b.ResourceID + "=" + printURL(b.UpstreamPrefix)
	}
	return bindings
}

// Format prints a Client as its redacted configuration under every fmt
// verb. Without it, fmt would print the unexported cfg field by reflection,
// client secret included.
func (c *Client) Format(f fmt.State, verb rune) {
	if c == nil {
		_, _ = io.WriteString(f, "<nil>")
		return
	}
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, "&caracal.Client{cfg:"+c.config().GoString()+"}")
		return
	}
	_, _ = io.WriteString(f, "&caracal.Client{"+c.config().String()+"}")
}
