package caracaltest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/caracal-go/caracal"
)

// Config returns a client configuration for the stack's first application
// in client-secret mode: the three service URLs, every resource in the
// lifecycle audience, and a binding per resource from its upstream URL.
func (s *Stack) Config() caracal.Config {
	app := s.set.apps[0]
	cfg := caracal.Config{
		ZoneID:         s.set.zone,
		ApplicationID:  app.ID,
		ClientSecret:   app.Secret,
		STSURL:         s.stsURL,
		CoordinatorURL: s.coordURL,
		GatewayURL:     s.gatewayURL,
	}
	for _, r := range s.set.resources {
		cfg.Resources = append(cfg.Resources, r.Identifier)
		cfg.Bindings = append(cfg.Bindings, caracal.ResourceBinding{
			ResourceID:     r.Identifier,
			UpstreamPrefix: s.upstreamURLs[r.Identifier],
		})
	}
	slices.SortStableFunc(cfg.Bindings, func(a, b caracal.ResourceBinding) int {
		return len(b.UpstreamPrefix) - len(a.UpstreamPrefix)
	})
	return cfg
}

// ClientOptions returns the options a client needs besides Config: the
// in-memory HTTP client for an InMemory stack, nothing otherwise.
func (s *Stack) ClientOptions() []caracal.Option {
	if !s.set.inMemory {
		return nil
	}
	return []caracal.Option{caracal.WithHTTPClient(s.HTTPClient())}
}

// NewClient returns a client of the stack's first application: Config,
// then ClientOptions, then opts.
func (s *Stack) NewClient(opts ...caracal.Option) (*caracal.Client, error) {
	all := append(s.ClientOptions(), opts...)
	return caracal.NewFromConfig(s.Config(), all...)
}

// profileFile is the caracal.toml WriteConfig writes (PROTOCOL §2.3).
type profileFile struct {
	ZoneID              string              `toml:"zone_id"`
	ApplicationID       string              `toml:"application_id"`
	AppClientSecretFile string              `toml:"app_client_secret_file"`
	STSURL              string              `toml:"sts_url"`
	CoordinatorURL      string              `toml:"coordinator_url"`
	GatewayURL          string              `toml:"gateway_url"`
	Credentials         []profileCredential `toml:"credentials"`
}

type profileCredential struct {
	Resource       string `toml:"resource"`
	UpstreamPrefix string `toml:"upstream_prefix,omitempty"`
}

// WriteConfig writes a caracal.toml profile for Config into dir (created if
// missing), with the client secret in a separate file next to it; both are
// owner-only (0600), as the SDK requires of a secret file. It returns the
// profile's path, for CARACAL_CONFIG or caracal.WithConfigFile. An
// InMemory stack's profile names its in-memory URLs, so a client loaded
// from it still needs ClientOptions.
func (s *Stack) WriteConfig(dir string) (profilePath string, err error) {
	if strings.TrimSpace(dir) == "" {
		// Not the working directory: the secret would land in the source tree.
		return "", errors.New("caracaltest: WriteConfig needs a directory (t.TempDir(), say)")
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("caracaltest: WriteConfig: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("caracaltest: WriteConfig: %w", err)
	}
	cfg := s.Config()
	secretPath := filepath.Join(dir, "client-secret")
	if err := writeOwnerOnly(secretPath, []byte(cfg.ClientSecret+"\n")); err != nil {
		return "", fmt.Errorf("caracaltest: WriteConfig: %w", err)
	}
	p := profileFile{
		ZoneID:              cfg.ZoneID,
		ApplicationID:       cfg.ApplicationID,
		AppClientSecretFile: secretPath,
		STSURL:              cfg.STSURL,
		CoordinatorURL:      cfg.CoordinatorURL,
		GatewayURL:          cfg.GatewayURL,
	}
	for _, r := range s.set.resources {
		p.Credentials = append(p.Credentials, profileCredential{
			Resource:       r.Identifier,
			UpstreamPrefix: s.upstreamURLs[r.Identifier],
		})
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(p); err != nil {
		return "", fmt.Errorf("caracaltest: WriteConfig: %w", err)
	}
	profilePath = filepath.Join(dir, "caracal.toml")
	if err := writeOwnerOnly(profilePath, buf.Bytes()); err != nil {
		return "", fmt.Errorf("caracaltest: WriteConfig: %w", err)
	}
	return profilePath, nil
}

// writeOwnerOnly writes a 0600 file, tightening an existing file's mode.
func writeOwnerOnly(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
