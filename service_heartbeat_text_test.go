package caracal_test

import (
	"net/http"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// paddedTimes makes every heartbeat answer carry its last heartbeat as its
// deadline (no lease granted), both with pad extra fractional digits: RFC
// 3339 puts no bound on them, and time.Parse accepts them all.
func paddedTimes(base http.RoundTripper, pad int) http.RoundTripper {
	return heartbeatAgent{base, func(agent map[string]any) error {
		at := strings.TrimSuffix(agent["last_heartbeat_at"].(string), "Z") + strings.Repeat("0", pad) + "Z"
		agent["last_heartbeat_at"], agent["heartbeat_deadline_at"] = at, at
		return nil
	}}
}

// The times of a heartbeat answer that granted no lease reach the error
// the handle ends with (and the warning it logs) in bounded length.
func TestServiceRenewalWithoutLeaseBoundsTheAnswersTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: paddedTimes(st.Transport(), 100_000)}))
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close(t.Context()) })

		svc, err := c.SpawnService(t.Context())
		require.NoError(t, err)
		_, err = svc.Heartbeat(t.Context())
		require.ErrorIs(t, err, caracal.ErrLeaseExpired)
		assert.Less(t, len(err.Error()), 2000, "the error carries the answer's times unbounded")
		assert.Less(t, len(svc.Err().Error()), 2000)
		require.NoError(t, svc.Close(t.Context()))
	})
}
