package caracal

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A port outside 1-65535 is refused when the configuration loads, naming the
// key, instead of producing a client whose every call fails as if the service
// were unavailable.
func TestLoadConfigURLPortRange(t *testing.T) {
	cases := []struct {
		name    string
		env     env
		opts    []Option
		wantErr string
	}{
		{"too large", baseEnv().with("CARACAL_STS_URL", "http://sts.example:99999"), nil, `caracal: CARACAL_STS_URL: "http://sts.example:99999" has port 99999`},
		{"zero", baseEnv(), []Option{WithCoordinatorURL("https://coord.example:0/")}, `caracal: WithCoordinatorURL: "https://coord.example:0/" has port 0`},
		{"ipv6 too large", baseEnv().with("CARACAL_GATEWAY_URL", "http://[::1]:65536"), nil, `caracal: CARACAL_GATEWAY_URL: "http://[::1]:65536" has port 65536`},
		{"upstream prefix", baseEnv().with("CARACAL_RESOURCES", "r=https://up.example:70000/v1"), nil, `caracal: CARACAL_RESOURCES: entry 1 "r": upstream prefix "https://up.example:70000/v1" has port 70000`},
		{"highest", baseEnv().with("CARACAL_STS_URL", "http://sts.example:65535"), nil, ""},
		{"empty port", baseEnv().with("CARACAL_STS_URL", "http://[::1]:"), nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadEnv(t, tc.env, tc.opts...)
			if tc.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
		})
	}

	cfg := Config{ZoneID: "z", ApplicationID: "a", ClientSecret: "s", STSURL: "https://sts.example:123456", CoordinatorURL: "https://coord.example"}
	err := cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `caracal: Config.STSURL: "https://sts.example:123456" has port 123456`)
}
