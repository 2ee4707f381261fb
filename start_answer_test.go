package caracal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// A session start answered with a session of another zone, application,
// subject, lifecycle or parent, with a longer TTL than the one asked for, or with an
// inherited delegation a session without a parent edge to inherit cannot
// have, is about another session than the one
// asked for: it is refused as an invalid answer instead of its id and edge
// being kept in the handle, presented in Headers and sent with every mint.
func TestStartAnsweredForAnotherSessionIsRefused(t *testing.T) {
	const otherID = "0198d0a1-0000-7000-8000-000000000001"
	cases := map[string]struct {
		child bool // the edit applies to a child's start (under a root)
		edit  func(m map[string]any)
	}{
		"zone":                 {edit: func(m map[string]any) { m["zone_id"] = "zone-other" }},
		"application":          {edit: func(m map[string]any) { m["application_id"] = "app-other" }},
		"lifecycle":            {edit: func(m map[string]any) { m["lifecycle"] = "service" }},
		"parent of a root":     {edit: func(m map[string]any) { m["parent_id"] = otherID }},
		"edge of a root":       {edit: func(m map[string]any) { m["delegation_edge_id"] = otherID }},
		"parent of a child":    {child: true, edit: func(m map[string]any) { m["parent_id"] = otherID }},
		"edge of a Grant.None": {child: true, edit: func(m map[string]any) { m["delegation_edge_id"] = otherID }},
		"a longer TTL":         {edit: func(m map[string]any) { m["ttl_seconds"] = 86400 }},
		"subject":              {edit: func(m map[string]any) { m["subject_authority_record_id"] = otherID }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			st := caracaltest.Start(t)
			base := http.DefaultTransport.(*http.Transport).Clone()
			t.Cleanup(base.CloseIdleConnections)
			hc := &http.Client{Transport: editAnswers(base, "/agents", func(m map[string]any) {
				if (m["parent_id"] != nil) == tc.child {
					tc.edit(m)
				}
			})}
			c, err := st.NewClient(caracal.WithHTTPClient(hc))
			require.NoError(t, err)
			t.Cleanup(func() { _ = c.Close(context.Background()) })

			var opts []caracal.SpawnOption
			ctx := t.Context()
			if tc.child {
				root, err := c.Spawn(ctx)
				require.NoError(t, err)
				ctx = root.Context()
				opts = append(opts, caracal.WithGrant(caracal.Grant.None()))
			}
			s, err := c.Spawn(ctx, append(opts, caracal.WithTTL(time.Minute))...)
			require.ErrorIs(t, err, caracal.ErrUnavailable, "spawned %v", s)
		})
	}
}

// lostThenEdited loses the answer to the first session start, as lostAnswer
// does, and then changes every later start answer with edit.
type lostThenEdited struct {
	lostAnswer
	edit func(map[string]any)
}

func (l *lostThenEdited) RoundTrip(req *http.Request) (*http.Response, error) {
	l.mu.Lock()
	lost := l.lost
	l.mu.Unlock()
	if lost == "" {
		return l.lostAnswer.RoundTrip(req)
	}
	resp, err := l.base.RoundTrip(req)
	if err != nil || req.Method != http.MethodPost || req.URL.Path != "/zones/zone-test/agents" || resp.StatusCode/100 != 2 {
		return resp, err
	}
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	l.edit(m)
	b, _ = json.Marshal(m)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	return resp, nil
}

// The look-up for the session of a given-up root start, answered with
// another session (a child, under another parent), retires nothing: the
// other session keeps running.
func TestSpawnGivenUpWhoseLookupNamesAnotherSessionRetiresNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		owner, err := st.NewClient()
		require.NoError(t, err)
		t.Cleanup(func() { _ = owner.Close(context.Background()) })
		root, err := owner.Spawn(t.Context())
		require.NoError(t, err)
		victim, err := owner.Spawn(root.Context(), caracal.WithGrant(caracal.Grant.None()))
		require.NoError(t, err)

		rt := &lostThenEdited{lostAnswer: lostAnswer{base: st.Transport()}, edit: func(m map[string]any) {
			m["agent_session_id"], m["parent_id"] = victim.ID(), root.ID()
		}}
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: rt}))
		require.NoError(t, err)
		st.Inject(caracaltest.RouteStart, caracaltest.Fault{Times: 1})
		st.Inject(caracaltest.RouteStart, caracaltest.Fault{Status: http.StatusServiceUnavailable, Times: 2})

		_, err = c.Spawn(t.Context())
		require.ErrorIs(t, err, caracal.ErrUnavailable)
		require.NotEmpty(t, rt.lost)
		_ = c.Close(t.Context())

		info, ok := st.SessionInfo(victim.ID())
		require.True(t, ok)
		assert.Equal(t, "active", info.Status, "the other session is not retired")
	})
}
