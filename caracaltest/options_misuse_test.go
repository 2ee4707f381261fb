package caracaltest_test

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/caracaltest"
)

// A negative lease or limit is refused: it used to be taken as "unset",
// so that WithLease(-time.Second) ran services on the default 120 s lease.
func TestNewRefusesNegativeSettings(t *testing.T) {
	for name, opt := range map[string]caracaltest.Option{
		"WithLease":         caracaltest.WithLease(-time.Second),
		"SessionsPerZone":   caracaltest.WithLimits(caracaltest.Limits{SessionsPerZone: -1}),
		"ChildrenPerParent": caracaltest.WithLimits(caracaltest.Limits{ChildrenPerParent: -1}),
		"MintPerMinute":     caracaltest.WithLimits(caracaltest.Limits{MintPerMinute: -1}),
		"AuthFailures":      caracaltest.WithLimits(caracaltest.Limits{AuthFailures: -1}),
	} {
		t.Run(name, func(t *testing.T) {
			s, err := caracaltest.New(opt)
			if s != nil {
				s.Close()
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), name)
		})
	}
}

// WriteConfig with an empty dir is refused rather than writing the profile
// and the client secret into the working directory.
func TestWriteConfigRefusesEmptyDir(t *testing.T) {
	st := caracaltest.Start(t)
	t.Chdir(t.TempDir())
	p, err := st.WriteConfig("")
	require.Error(t, err)
	assert.Empty(t, p)
	entries, err := os.ReadDir(".")
	require.NoError(t, err)
	assert.Empty(t, entries, "WriteConfig wrote into the working directory")
}
