package caracaltest_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// In a test, caracaltest.Start(t) does the same and closes the stack with
// t.Cleanup.
func ExampleNew() {
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

	root, err := c.Spawn(ctx, caracal.WithLabels("dispatcher"))
	if err != nil {
		log.Fatal(err)
	}
	defer root.Close(ctx)
	info, _ := st.SessionInfo(root.ID())
	fmt.Println(info.Lifecycle, info.Status, info.Labels)

	// Every request the stack received is recorded, secrets redacted.
	fmt.Println("token exchanges:", st.Count(caracaltest.RouteToken))
	fmt.Println("session starts:", st.Count(caracaltest.RouteStart))
	// Output:
	// task active [dispatcher]
	// token exchanges: 1
	// session starts: 1
}

func ExampleStack_Inject() {
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

	// The Coordinator is unavailable for the next two session starts; the
	// client retries keyed starts and gets through on the third attempt.
	st.Inject(caracaltest.RouteStart, caracaltest.Fault{Status: http.StatusServiceUnavailable, Times: 2})
	s, err := c.Spawn(ctx, caracal.WithTTL(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx)
	fmt.Println("start attempts:", st.Count(caracaltest.RouteStart))
	// Output:
	// start attempts: 3
}

// A resource server under test sits behind the stack's Gateway: its
// Middleware verifies the resource token the Gateway sends and binds the
// calling agent.
func ExampleStack_SetUpstream() {
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

	mw, err := c.Middleware(caracal.VerifyTokens("resource://tickets"))
	if err != nil {
		log.Fatal(err)
	}
	tickets := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, _ := caracal.FromContext(r.Context())
		fmt.Println("handler: hop", a.Hop(), "from", a.ApplicationID())
	})
	if err := st.SetUpstream("resource://tickets", mw(tickets)); err != nil {
		log.Fatal(err)
	}

	root, err := c.Spawn(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer root.Close(ctx)
	reader, err := c.Spawn(root.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Hour)))
	if err != nil {
		log.Fatal(err)
	}
	defer reader.Close(ctx)

	hc := c.HTTPClient(caracal.WithScopes("tickets:read"))
	req, _ := http.NewRequestWithContext(reader.Context(), http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets/7", nil)
	resp, err := hc.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println("status:", resp.StatusCode)
	// Output:
	// handler: hop 1 from app-test
	// status: 200
}
