package caracal_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/caracal-go/caracal"
)

// The receiving side of a delegation: a session that was handed an edge id
// (over a queue, say) binds it, and from then on what it sends with the
// returned context presents the delegated authority.
func ExampleClient_AcceptDelegation() {
	st, c := exampleStack()
	defer st.Close()
	ctx := context.Background()
	defer c.Close(ctx)

	dispatcher, err := c.Spawn(ctx, caracal.WithLabels("dispatcher"))
	if err != nil {
		log.Fatal(err)
	}
	defer dispatcher.Close(ctx)
	worker, err := c.Spawn(ctx, caracal.WithLabels("reader"))
	if err != nil {
		log.Fatal(err)
	}
	defer worker.Close(ctx)
	d, err := c.Delegate(dispatcher.Context(), worker.ID(),
		caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, 10*time.Minute))
	if err != nil {
		log.Fatal(err)
	}

	// The Coordinator confirms that the edge is active and delegated to
	// this session before it is bound.
	jobCtx, err := c.AcceptDelegation(worker.Context(), d.ID)
	if err != nil {
		log.Fatal(err)
	}
	a, _ := caracal.FromContext(jobCtx)
	fmt.Println("session:", a.SessionID() == worker.ID())
	fmt.Println("presents the edge:", a.DelegationID() == d.ID, "hop", a.Hop())
	before, _ := caracal.FromContext(worker.Context())
	fmt.Println("worker's own context unchanged:", before.DelegationID() == "")

	// An edge that was never delegated to this session is refused.
	_, err = c.AcceptDelegation(dispatcher.Context(), d.ID)
	fmt.Println("not the receiver:", errors.Is(err, caracal.ErrNotFound))
	// Output:
	// session: true
	// presents the edge: true hop 1
	// worker's own context unchanged: true
	// not the receiver: true
}
