package caracal_test

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// heldDelete sends, from a child labelled admin, a DELETE whose scope the
// zone's policy holds for approval, and returns the hold.
func (g *governed) heldDelete(t testing.TB) *caracal.ApprovalRequiredError {
	t.Helper()
	admin := g.child(t, "admin", tickets, "tickets:delete")
	hc := g.c.HTTPClient(caracal.WithScopes("tickets:delete"))
	r, err := http.NewRequestWithContext(admin.Context(), http.MethodDelete, g.url(tickets, "/tickets/9"), nil)
	require.NoError(t, err)
	_, err = hc.Do(r)
	var ae *caracal.ApprovalRequiredError
	require.ErrorAs(t, err, &ae)
	return ae
}

func TestWaitApprovalInProgressEndsWithClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := startGoverned(t, caracaltest.InMemory())
		ae := g.heldDelete(t)

		waited := make(chan error, 1)
		go func() { waited <- g.c.WaitApproval(context.Background(), ae.ApprovalID) }()
		synctest.Wait()
		select {
		case err := <-waited:
			t.Fatalf("the wait ended before the approval was decided: %v", err)
		default:
		}

		require.NoError(t, g.c.Close(context.Background()))
		require.ErrorIs(t, <-waited, caracal.ErrClosed)
	})
}

// An approval id comes from the STS as an id of the protocol's form; one
// that is not (empty, a newline, kilobytes of text), or is a dot segment
// that a proxy would resolve into another path, is refused before any
// call, and the error quotes a bounded part of it.
func TestWaitApprovalRefusesAnIDOfAnotherForm(t *testing.T) {
	g := startGoverned(t)
	g.st.ResetRecord()
	for _, id := range []string{"", "ap\nforged: line", strings.Repeat("x", 4096), "../../oauth/2/token", ".", ".."} {
		err := g.c.WaitApproval(t.Context(), id)
		require.ErrorIs(t, err, caracal.ErrInvalidRequest)
		assert.NotContains(t, err.Error(), "\n")
		assert.Less(t, len(err.Error()), 300)
	}
	assert.Empty(t, g.st.Requests(), "refused before any call")
}

// A wait cut short by its context says the approval is still pending and
// that waiting again is safe, and still matches the context's cause.
func TestWaitApprovalCutShortSaysItIsStillPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := startGoverned(t, caracaltest.InMemory())
		ae := g.heldDelete(t)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		err := g.c.WaitApproval(ctx, ae.ApprovalID)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), ae.ApprovalID)
		assert.Contains(t, err.Error(), "still pending")
		require.NoError(t, g.st.Approve(ae.ApprovalID))
		require.NoError(t, g.c.WaitApproval(t.Context(), ae.ApprovalID), "waiting again is safe")
	})
}

// An approval the retry already consumed is not approved any more: a
// second wait must not return nil, which would send the request once more.
func TestWaitApprovalAfterTheApprovalWasUsed(t *testing.T) {
	g := startGoverned(t)
	admin := g.child(t, "admin", tickets, "tickets:delete")
	hc := g.c.HTTPClient(caracal.WithScopes("tickets:delete"))
	send := func() (*http.Response, error) {
		r, err := http.NewRequestWithContext(admin.Context(), http.MethodDelete, g.url(tickets, "/tickets/9"), nil)
		require.NoError(t, err)
		return hc.Do(r)
	}
	_, err := send()
	var ae *caracal.ApprovalRequiredError
	require.ErrorAs(t, err, &ae)
	require.NoError(t, g.st.Approve(ae.ApprovalID))
	require.NoError(t, g.c.WaitApproval(t.Context(), ae.ApprovalID))
	resp, err := send()
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	err = g.c.WaitApproval(t.Context(), ae.ApprovalID)
	require.Error(t, err)
	assert.ErrorContains(t, err, "already used")
	assert.NotErrorIs(t, err, caracal.ErrApprovalRejected)
}

// A hold nobody decides expires: the wait ends with an error that says to
// send the request again, not nil, which would send the held request as if
// it were approved.
func TestWaitApprovalOnAHoldThatExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := startGoverned(t, caracaltest.InMemory())
		ae := g.heldDelete(t)
		err := g.c.WaitApproval(t.Context(), ae.ApprovalID)
		require.Error(t, err)
		assert.ErrorContains(t, err, "expired")
		assert.NotErrorIs(t, err, caracal.ErrApprovalRejected)
		assert.False(t, time.Now().Before(ae.ExpiresAt), "it ended when the hold expired")
	})
}

// A wait that returned leaves nothing running behind it, though neither its
// context nor the client has ended.
func TestWaitApprovalLeavesNoGoroutineBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := startGoverned(t, caracaltest.InMemory())
		ae := g.heldDelete(t)
		require.NoError(t, g.st.Approve(ae.ApprovalID))
		require.NoError(t, g.c.WaitApproval(context.Background(), ae.ApprovalID))
		synctest.Wait()
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		assert.NotContains(t, string(buf), "caracal.(*Client).WaitApproval")
		require.NoError(t, g.c.Close(context.Background()))
	})
}

// A wait whose context ends while it backs off after a failed poll reports
// the poll's failure with the context's cause: the caller learns that the
// STS was refusing, not only that time ran out.
func TestWaitApprovalCutShortAfterAFailedPollReportsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := startGoverned(t, caracaltest.InMemory())
		ae := g.heldDelete(t)
		g.st.Inject(caracaltest.RouteApproval, caracaltest.Fault{Status: http.StatusServiceUnavailable, RetryAfter: time.Minute})
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		err := g.c.WaitApproval(ctx, ae.ApprovalID)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		var e *caracal.Error
		require.ErrorAs(t, err, &e, "the failed poll's answer")
		assert.Equal(t, http.StatusServiceUnavailable, e.StatusCode)
		assert.Equal(t, 1, g.st.Count(caracaltest.RouteApproval))
	})
}

// A client whose HTTP client has a timeout too short for even the shortest
// long poll (wait=1) still waits out a pending approval: its polls must not
// all be cut off by that timeout and the wait end as if the STS were down.
func TestWaitApprovalWithAShortHTTPClientTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := startGoverned(t, caracaltest.InMemory())
		ae := g.heldDelete(t)
		c, err := g.st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: g.st.Transport(), Timeout: time.Second}))
		require.NoError(t, err)
		defer func() { _ = c.Close(context.Background()) }()

		waited := make(chan error, 1)
		go func() { waited <- c.WaitApproval(t.Context(), ae.ApprovalID) }()
		time.Sleep(time.Minute)
		require.NoError(t, g.st.Approve(ae.ApprovalID))
		require.NoError(t, <-waited)
	})
}
