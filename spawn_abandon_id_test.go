package caracal_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// foreignReplay loses the answer to the first session start, as lostAnswer
// does, and then makes every later start answer name id as the session.
type foreignReplay struct {
	lostAnswer
	id string
}

func (f *foreignReplay) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	lost := f.lost
	f.mu.Unlock()
	if lost == "" {
		return f.lostAnswer.RoundTrip(req)
	}
	resp, err := f.base.RoundTrip(req)
	if err != nil || req.Method != http.MethodPost || req.URL.Path != "/zones/zone-test/agents" || resp.StatusCode/100 != 2 {
		return resp, err
	}
	var body map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err := json.Unmarshal(b, &body); err != nil {
		return nil, err
	}
	body["agent_session_id"] = f.id
	b, _ = json.Marshal(body)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	return resp, nil
}

// When the look-up for the session of a given-up start is answered with
// an id that is no Coordinator id (here half a megabyte of it), nothing is
// retired under that id, and neither the warning nor Client.Close's error
// carries the Coordinator's text.
func TestSpawnGivenUpWhoseLookupNamesNoCoordinatorID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		foreign := strings.Repeat("a", 512<<10)
		rt := &foreignReplay{lostAnswer: lostAnswer{base: st.Transport()}, id: foreign}
		var logs lockedBuffer
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: rt}),
			caracal.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
		require.NoError(t, err)
		st.Inject(caracaltest.RouteStart, caracaltest.Fault{Times: 1})
		st.Inject(caracaltest.RouteStart, caracaltest.Fault{Status: http.StatusServiceUnavailable, Times: 2})
		st.Inject(caracaltest.RouteRetire, caracaltest.Fault{Status: http.StatusServiceUnavailable, Times: 1})

		_, err = c.Spawn(t.Context())
		require.ErrorIs(t, err, caracal.ErrUnavailable)
		require.NotEmpty(t, rt.lost)
		closeErr := c.Close(t.Context())

		assert.Zero(t, st.Count(caracaltest.RouteRetire), "no retire under an id that is no Coordinator id")
		out := logs.String()
		assert.Equal(t, 1, strings.Count(out, "\n"), out)
		assert.Contains(t, out, "a session start was given up")
		assert.NotContains(t, out, foreign[:129])
		assert.Less(t, len(out), 2048)
		if closeErr != nil {
			assert.NotContains(t, closeErr.Error(), foreign[:129])
		}
	})
}
