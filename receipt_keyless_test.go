package caracal_test

import (
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// lostKeyless lets the first session start sent without an Idempotency-Key
// reach the Coordinator, which starts the session, and loses the answer.
type lostKeyless struct {
	base http.RoundTripper

	mu   sync.Mutex
	lost string
}

func (l *lostKeyless) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(req)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil || l.lost != "" || req.Method != http.MethodPost || req.URL.Path != "/zones/zone-test/agents" ||
		req.Header.Get("Idempotency-Key") != "" {
		return resp, err
	}
	l.lost = startedID(resp)
	return nil, errors.New("connection reset by peer")
}

// Past the receipt limit a start goes without a key, and one whose answer
// is lost may have started a session that nobody can find to retire: the
// client says so, as it does when looking for the session of a keyed start
// fails, instead of leaving it running unreported.
func TestKeylessStartWithoutAnswerIsReported(t *testing.T) {
	st := caracaltest.Start(t, caracaltest.WithLimits(caracaltest.Limits{ReceiptsPerScope: 100}))
	fill, _ := newClient(t, st)
	fillReceipts(t, fill, 100)

	var logs lockedBuffer
	lost := &lostKeyless{base: http.DefaultTransport.(*http.Transport).Clone()}
	c, _ := newClient(t, st, caracal.WithHTTPClient(&http.Client{Transport: lost}),
		caracal.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	_, err := c.Spawn(t.Context())
	require.ErrorIs(t, err, caracal.ErrUnavailable)
	require.NotEmpty(t, lost.lost)

	info, ok := st.SessionInfo(lost.lost)
	require.True(t, ok)
	require.Equal(t, "active", info.Status, "nothing can find the session to retire it")
	assert.Contains(t, logs.String(), "without an idempotency key")
	assert.Contains(t, logs.String(), "runs until its TTL or lease ends")
}
