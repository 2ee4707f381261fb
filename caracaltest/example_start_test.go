package caracaltest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"testing"
	"time"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// In a test, Start starts a stack and closes it when the test ends. A test
// needs a *testing.T, so this example is compiled but not run; the other
// examples make the same calls on a stack from New.
func ExampleStart() {
	testReaderCallsTickets := func(t *testing.T) {
		st := caracaltest.Start(t)
		c, err := st.NewClient()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(t.Context())

		root, err := c.Spawn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		reader, err := c.Spawn(root.Context(), caracal.WithLabels("reader"),
			caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Hour)))
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(reader.Context(), http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets/7", nil)
		resp, err := c.HTTPClient(caracal.WithScopes("tickets:read")).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("status %d, want 200", resp.StatusCode)
		}
		if n := st.Count(caracaltest.RouteGateway); n != 1 {
			t.Errorf("%d Gateway requests, want 1", n)
		}
	}
	_ = testReaderCallsTickets
}

// An operator's console ends a session and its subtree; the SDK sees it on
// its next call.
func ExampleStack_Terminate() {
	st, err := caracaltest.New()
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	c, err := st.NewClient()
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	defer c.Close(ctx)

	svc, err := c.SpawnService(ctx, caracal.WithLabels("billing-worker"))
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close(ctx)
	if err := st.Terminate(svc.ID()); err != nil {
		log.Fatal(err)
	}
	info, _ := st.SessionInfo(svc.ID())
	fmt.Println("status:", info.Status)

	_, err = svc.Heartbeat(ctx)
	fmt.Println("lease lost:", errors.Is(err, caracal.ErrLeaseLost))
	fmt.Println("handle ended:", errors.Is(svc.Err(), caracal.ErrLeaseLost))

	// Terminating it again fails: it has already ended.
	fmt.Println("again:", st.Terminate(svc.ID()) != nil)
	// Output:
	// status: terminated
	// lease lost: true
	// handle ended: true
	// again: true
}
