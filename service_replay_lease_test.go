package caracal_test

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// lostLease loses the answer to the first lease acquire after the
// Coordinator executed it.
type lostLease struct {
	base http.RoundTripper
	done atomic.Bool
}

func (l *lostLease) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.URL.Path, "/lease") || l.done.Swap(true) {
		return resp, err
	}
	_ = resp.Body.Close()
	return nil, errors.New("connection reset by peer")
}

// As above, but the replay's lease acquire reached the Coordinator and only
// its answer was lost: the generation moved on, and the session is still
// retired, with the generation it has now.
func TestServiceReplayUnderAGeneratedKeyWhoseLeaseAnswerIsLostIsRetired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		lost := &lostAnswer{base: st.Transport()}
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: &lostLease{base: lost}}))
		require.NoError(t, err)
		_, err = c.SpawnService(t.Context())
		require.Error(t, err)
		require.NotEmpty(t, lost.lost)
		assert.Contains(t, err.Error(), lost.lost)

		require.NoError(t, c.Close(t.Context()))
		info, ok := st.SessionInfo(lost.lost)
		require.True(t, ok)
		assert.Equal(t, "terminated", info.Status, "the session nobody holds was retired")
	})
}
