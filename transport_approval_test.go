package caracal_test

import (
	"context"
	"net/http"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

func TestWaitApprovalInProgressEndsWithClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := startGoverned(t, caracaltest.InMemory())
		admin := g.child(t, "admin", tickets, "tickets:delete")
		hc := g.c.HTTPClient(caracal.WithScopes("tickets:delete"))
		r, _ := http.NewRequestWithContext(admin.Context(), http.MethodDelete, g.url(tickets, "/tickets/9"), nil)
		_, err := hc.Do(r)
		var ae *caracal.ApprovalRequiredError
		require.ErrorAs(t, err, &ae)

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
