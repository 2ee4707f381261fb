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

// An in-memory stack opens no socket. In a test it runs inside a
// testing/synctest bubble, where a lease that lives for minutes takes no
// real time:
//
//	func TestWorker(t *testing.T) {
//		synctest.Test(t, func(t *testing.T) {
//			st := caracaltest.Start(t, caracaltest.InMemory())
//			c, err := st.NewClient()
//			...
//			defer c.Close(t.Context())
//			...
//		})
//	}
func ExampleInMemory() {
	st, err := caracaltest.New(caracaltest.InMemory())
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	fmt.Println(st.GatewayURL())
	fmt.Println(st.UpstreamURL("resource://tickets"))

	// Only the stack's Transport reaches these hosts; NewClient gives the
	// client an HTTP client that uses it (see ClientOptions).
	c, err := st.NewClient()
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	defer c.Close(ctx)

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
	req, _ := http.NewRequestWithContext(reader.Context(), http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets/7", nil)
	resp, err := c.HTTPClient(caracal.WithScopes("tickets:read")).Do(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output:
	// http://gateway.caracal.internal
	// http://res-tickets.upstream.caracal.internal
	// 200 OK
}
