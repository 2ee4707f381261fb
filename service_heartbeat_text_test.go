package caracal_test

import (
	"bytes"
	"encoding/json"
	"io"
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
type paddedTimes struct {
	base http.RoundTripper
	pad  int
}

func (p paddedTimes) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := p.base.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasSuffix(r.URL.Path, "/heartbeat") {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var body map[string]json.RawMessage
	var agent map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body["agent"], &agent); err != nil {
		return nil, err
	}
	at := strings.TrimSuffix(agent["last_heartbeat_at"].(string), "Z") + strings.Repeat("0", p.pad) + "Z"
	agent["last_heartbeat_at"], agent["heartbeat_deadline_at"] = at, at
	if body["agent"], err = json.Marshal(agent); err != nil {
		return nil, err
	}
	if b, err = json.Marshal(body); err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	return resp, nil
}

// The times of a heartbeat answer that granted no lease reach the error
// the handle ends with (and the warning it logs) in bounded length.
func TestServiceRenewalWithoutLeaseBoundsTheAnswersTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: paddedTimes{st.Transport(), 100_000}}))
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
