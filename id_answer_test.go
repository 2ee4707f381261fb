package caracal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// editAnswers is a client transport that changes, with edit, the JSON
// answers to POST requests on paths with the given suffix, as a confused
// or hostile server (or a proxy in front of it) may answer.
func editAnswers(base http.RoundTripper, suffix string, edit func(map[string]any)) http.RoundTripper {
	return rtFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(r)
		if err != nil || r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, suffix) || resp.StatusCode/100 != 2 {
			return resp, err
		}
		var m map[string]any
		err = json.NewDecoder(resp.Body).Decode(&m)
		_ = resp.Body.Close()
		if err != nil {
			return nil, err
		}
		edit(m)
		b, _ := json.Marshal(m)
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Del("Content-Length")
		return resp, nil
	})
}

// rewriting is editAnswers setting one field to value.
func rewriting(base http.RoundTripper, suffix, field, value string) http.RoundTripper {
	return editAnswers(base, suffix, func(m map[string]any) { m[field] = value })
}

// An id the Coordinator answers with that is not an id of the protocol
// (^[A-Za-z0-9_.\-:]{1,128}$, what every id in a Coordinator path must
// match) is refused as an invalid answer: it never becomes the id of a
// session or delegation, to be put into later requests, errors and logs.
func TestAnswerWithAnIdOutsideTheProtocolIsRefused(t *testing.T) {
	for _, bad := range []string{"sess\nlevel=INFO msg=forged", "../../agents", strings.Repeat("a", 129)} {
		st := caracaltest.Start(t)
		base := http.DefaultTransport.(*http.Transport).Clone()
		t.Cleanup(base.CloseIdleConnections)

		hc := &http.Client{Transport: rewriting(base, "/agents", "agent_session_id", bad)}
		c, err := st.NewClient(caracal.WithHTTPClient(hc))
		require.NoError(t, err)
		_, err = c.Spawn(t.Context())
		require.ErrorIs(t, err, caracal.ErrUnavailable, "%q", bad)
		assert.NotContains(t, err.Error(), bad)
		require.NoError(t, c.Close(t.Context()))

		hc = &http.Client{Transport: rewriting(base, "/agents", "subject_authority_record_id", bad)}
		c, err = st.NewClient(caracal.WithHTTPClient(hc))
		require.NoError(t, err)
		s, err := c.Spawn(t.Context())
		if err == nil {
			t.Errorf("%q: the session's agent carries subject record %q", bad, s.Agent().SubjectRecordID())
		}
		require.ErrorIs(t, err, caracal.ErrUnavailable, "%q", bad)
		assert.NotContains(t, err.Error(), bad)
		require.NoError(t, c.Close(t.Context()))

		hc = &http.Client{Transport: rewriting(base, "/delegations", "delegation_edge_id", bad)}
		c, err = st.NewClient(caracal.WithHTTPClient(hc))
		require.NoError(t, err)
		root, err := c.Spawn(t.Context())
		require.NoError(t, err)
		_, err = c.Spawn(root.Context(), caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Minute)))
		require.ErrorIs(t, err, caracal.ErrUnavailable, "%q", bad)
		assert.NotContains(t, err.Error(), bad)
		require.NoError(t, c.Close(t.Context()))
	}
}

// An inbound-edge check answered for another edge, or without saying which
// edge it is about, does not confirm the edge asked about.
func TestAcceptDelegationNeedsTheAnswerForItsEdge(t *testing.T) {
	st := caracaltest.Start(t)
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	var answer string
	hc := &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/delegations/inbound/") {
			return base.RoundTrip(r)
		}
		return jsonAnswer(answer), nil
	})}
	c, err := st.NewClient(caracal.WithHTTPClient(hc))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	s, err := c.Spawn(t.Context())
	require.NoError(t, err)

	for _, answer = range []string{`{}`, `{"id":"edge-other","status":"active"}`} {
		_, err = c.AcceptDelegation(s.Context(), "edge-never-made")
		assert.ErrorIs(t, err, caracal.ErrUnavailable, answer)
	}
	// A status other than active refuses the edge; the server's text
	// shows on one line, bounded.
	answer = `{"id":"edge-never-made","status":"revoked\nlevel=INFO msg=forged` + strings.Repeat("x", 1000) + `"}`
	_, err = c.AcceptDelegation(s.Context(), "edge-never-made")
	require.ErrorIs(t, err, caracal.ErrNotFound)
	assert.NotContains(t, err.Error(), "\n")
	assert.Less(t, len(err.Error()), 500)

	answer = `{"id":"edge-never-made","status":"active"}`
	_, err = c.AcceptDelegation(s.Context(), "edge-never-made")
	assert.NoError(t, err, "the answer about the edge asked about is taken")
}

// jsonAnswer is a 200 answer whose body is the JSON document body.
func jsonAnswer(body string) *http.Response {
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", "application/json")
	_, _ = rec.WriteString(body)
	return rec.Result()
}

// A replayed narrowed spawn looks for the edge its first start created in
// the session's inbound edges: an edge listed there with an id outside the
// protocol (or none) is refused as an invalid answer, as a created edge's
// id is, instead of becoming the new session's delegation.
func TestReplayedSpawnRefusesAListedEdgeIdOutsideTheProtocol(t *testing.T) {
	for _, bad := range []string{"edge\nlevel=INFO msg=forged", ""} {
		st := caracaltest.Start(t)
		base := http.DefaultTransport.(*http.Transport).Clone()
		t.Cleanup(base.CloseIdleConnections)
		hc := &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := base.RoundTrip(r)
			if err != nil || r.Method != http.MethodGet || strings.Count(r.URL.Path[strings.Index(r.URL.Path, "/inbound/")+1:], "/") != 1 {
				return resp, err
			}
			var list map[string][]map[string]any
			err = json.NewDecoder(resp.Body).Decode(&list)
			_ = resp.Body.Close()
			if err != nil {
				return nil, err
			}
			for _, e := range list["items"] {
				e["id"], e["delegation_edge_id"] = bad, bad
			}
			return jsonAnswer(mustJSON(t, list)), nil
		})}
		c, err := st.NewClient(caracal.WithHTTPClient(hc))
		require.NoError(t, err)
		root, err := c.Spawn(t.Context())
		require.NoError(t, err)
		opts := []caracal.SpawnOption{caracal.WithIdempotencyKey("job-9"),
			caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Minute))}
		first, err := c.Spawn(root.Context(), opts...)
		require.NoError(t, err)

		again, err := c.Spawn(root.Context(), opts...)
		if err == nil {
			t.Errorf("%q: the replayed spawn bound delegation %q", bad, again.Agent().DelegationID())
		}
		require.ErrorIs(t, err, caracal.ErrUnavailable, "%q", bad)
		if bad != "" {
			assert.NotContains(t, err.Error(), bad)
		}
		require.NoError(t, first.Close(t.Context()))
		require.NoError(t, c.Close(t.Context()))
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
