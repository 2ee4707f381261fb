package caracal_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A ttl_seconds far past the Coordinator's limit (1 to 86400) in a session
// or delegation answer, as a confused server may send, counts as the limit:
// its count of nanoseconds would wrap around, here to under a second, and
// make the session expire at once and the edge refuse every child.
func TestHugeTTLAnswerCountsAsTheLimit(t *testing.T) {
	const wraps = "18446744074" // × 1e9 ns wraps to 0.29 s
	st := caracaltest.Start(t)
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	hc := &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(r)
		if err != nil || r.Method != http.MethodPost || resp.StatusCode/100 != 2 {
			return resp, err
		}
		var m map[string]any
		err = json.NewDecoder(resp.Body).Decode(&m)
		_ = resp.Body.Close()
		if err != nil {
			return nil, err
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/agents"):
			m["ttl_seconds"] = json.Number(wraps)
		case strings.HasSuffix(r.URL.Path, "/delegations"):
			k, _ := m["constraints_json"].(map[string]any)
			if k == nil {
				k = map[string]any{}
			}
			k["ttl_seconds"] = json.Number(wraps)
			m["constraints_json"] = k
		}
		b, _ := json.Marshal(m)
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Del("Content-Length")
		return resp, nil
	})}
	c, err := st.NewClient(caracal.WithHTTPClient(hc))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(t.Context()) })

	start := time.Now()
	root, err := c.Spawn(t.Context())
	require.NoError(t, err)
	assert.True(t, root.ExpiresAt().After(start.Add(time.Hour)), "expires %v after the start", root.ExpiresAt().Sub(start))
	assert.False(t, root.ExpiresAt().After(time.Now().Add(24*time.Hour)), "expires %v after the start", root.ExpiresAt().Sub(start))

	hops := caracal.Constraints{MaxHops: 3}
	parent, err := c.Spawn(root.Context(), caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", hops, time.Hour)))
	require.NoError(t, err)
	_, err = c.Spawn(parent.Context(), caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{MaxHops: 2}, time.Minute)))
	assert.NoError(t, err, "a child edge of a minute fits a parent edge of a day")
}

// A session answer whose ttl_seconds is not positive, as a confused server
// may send, counts as the Coordinator's default TTL of an hour: the session
// does not expire at its start, nor before it.
func TestNonPositiveTTLAnswerCountsAsTheDefault(t *testing.T) {
	st := caracaltest.Start(t)
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	for _, ttl := range []string{"0", "-1"} {
		hc := &http.Client{Transport: editAnswers(base, "/agents", func(m map[string]any) { m["ttl_seconds"] = json.Number(ttl) })}
		c, err := st.NewClient(caracal.WithHTTPClient(hc))
		require.NoError(t, err)
		start := time.Now()
		s, err := c.Spawn(t.Context())
		require.NoError(t, err)
		assert.WithinRange(t, s.ExpiresAt(), start.Add(time.Hour-time.Second), time.Now().Add(time.Hour), "ttl_seconds %s", ttl)
		require.NoError(t, c.Close(t.Context()))
	}
}
