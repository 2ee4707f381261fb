package caracal_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// An approval status answered for another approval than the one asked
// about (a confused STS, or a proxy in front of it) does not decide the
// wait: a nil return would have the caller send the held request again as
// if its own approval were granted.
func TestWaitApprovalNeedsTheAnswerForItsApproval(t *testing.T) {
	synctest.Test(t, waitApprovalNeedsTheAnswerForItsApproval)
}

func waitApprovalNeedsTheAnswerForItsApproval(t *testing.T) {
	g := startGoverned(t, caracaltest.InMemory())
	approved, held := g.heldDelete(t), g.heldDelete(t)
	require.NotEqual(t, approved.ApprovalID, held.ApprovalID)
	require.NoError(t, g.st.Approve(approved.ApprovalID))

	base := g.st.Transport()
	hc := &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/approvals/"+held.ApprovalID) {
			r = r.Clone(r.Context())
			r.URL.Path = strings.TrimSuffix(r.URL.Path, held.ApprovalID) + approved.ApprovalID
		}
		return base.RoundTrip(r)
	})}
	c, err := g.st.NewClient(caracal.WithHTTPClient(hc))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })

	err = c.WaitApproval(t.Context(), held.ApprovalID)
	require.ErrorIs(t, err, caracal.ErrUnavailable)
	assert.NotErrorIs(t, err, caracal.ErrApprovalRejected)
	require.NoError(t, c.WaitApproval(t.Context(), approved.ApprovalID), "the answer about the approval asked about is taken")
}
