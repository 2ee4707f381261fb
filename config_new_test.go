package caracal

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewFromConfigAppliesOptions(t *testing.T) {
	cfg := Config{ZoneID: "z", ApplicationID: "a", BootstrapToken: "opaque", STSURL: "https://s", CoordinatorURL: "https://c"}
	c, err := NewFromConfig(cfg, WithClientSecret(testSecret), WithBinding("r", "http://r"), WithGatewayURL("https://g"))
	require.NoError(t, err)
	got := c.Config()
	assert.Equal(t, testSecret, got.ClientSecret)
	assert.Empty(t, got.BootstrapToken)
	assert.Equal(t, []ResourceBinding{{"r", "http://r"}}, got.Bindings)
	assert.Zero(t, got.opt, "Client.Config drops the option bookkeeping")

	_, err = NewFromConfig(cfg, WithClientSecretFile(filepath.Join(t.TempDir(), "missing")))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "caracal: WithClientSecretFile: secret file")

	// Profile options would be silently ignored: they are refused.
	for _, opt := range []Option{WithConfigFile("caracal.toml"), WithStrictConfig()} {
		_, err = NewFromConfig(cfg, WithClientSecret(testSecret), opt)
		assert.ErrorContains(t, err, "load the profile with New")
	}
}

func TestNewLoadsConfig(t *testing.T) {
	c, err := New(WithLookupEnv(baseEnv().lookup))
	require.NoError(t, err)
	assert.Equal(t, "zone-env", c.Config().ZoneID)

	_, err = New(WithLookupEnv(env{}.lookup))
	require.Error(t, err)
}

func TestConfigClone(t *testing.T) {
	a := Config{Resources: []string{"r"}, Bindings: []ResourceBinding{{"r", "http://r"}}}
	b := a.clone()
	b.Resources[0] = "changed"
	b.Bindings[0].ResourceID = "changed"
	assert.Equal(t, "r", a.Resources[0])
	assert.Equal(t, "r", a.Bindings[0].ResourceID)
}
