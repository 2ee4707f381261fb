package stsclient

import (
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A poll the STS holds for the whole wait and then answers a little late
// is still waited for: the wait is not also the poll's own time limit.
func TestWaitApprovalPollAnsweredJustAfterItsWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var polls atomic.Int64
		hc := &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
			polls.Add(1)
			wait, _ := time.ParseDuration(r.URL.Query().Get("wait") + "s")
			select { // held for the wait, then some latency
			case <-time.After(wait + 100*time.Millisecond):
			case <-r.Context().Done():
				return nil, r.Context().Err()
			}
			return jsonResponse(200, `{"id":"ap-1","state":"approved"}`), nil
		})}
		c := New(Config{BaseURL: "http://sts.invalid", HTTPClient: hc})
		st, err := c.WaitApproval(t.Context(), "ap-1")
		require.NoError(t, err)
		assert.Equal(t, "approved", st.State)
		assert.EqualValues(t, 1, polls.Load())
	})
}

// A 200 poll answer without a state is not a decision: it is polled again
// as a transient failure, not handed to the caller as a decided approval.
func TestWaitApprovalAnswerWithoutStateIsPolledAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var polls atomic.Int64
		hc := &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
			if polls.Add(1) == 1 {
				return jsonResponse(200, `{"id":"ap-1"}`), nil
			}
			return jsonResponse(200, `{"id":"ap-1","state":"rejected"}`), nil
		})}
		c := New(Config{BaseURL: "http://sts.invalid", HTTPClient: hc})
		st, err := c.WaitApproval(t.Context(), "ap-1")
		require.NoError(t, err)
		assert.Equal(t, "rejected", st.State)
		assert.EqualValues(t, 2, polls.Load())
	})
}
