package caracal_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/caracal-go/caracal"
)

func ExampleClient_HTTPClient() {
	st, c := exampleStack()
	defer st.Close()
	ctx := context.Background()
	defer c.Close(ctx)

	root, err := c.Spawn(ctx, caracal.WithLabels("dispatcher"))
	if err != nil {
		log.Fatal(err)
	}
	defer root.Close(ctx)
	reader, err := c.Spawn(root.Context(), caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, 5*time.Minute)))
	if err != nil {
		log.Fatal(err)
	}
	defer reader.Close(ctx)

	// Requests under the binding of resource://tickets go through the
	// Gateway with a fresh single-use mandate each.
	hc := c.HTTPClient(caracal.WithScopes("tickets:read"))
	for range 2 {
		req, _ := http.NewRequestWithContext(reader.Context(), http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets/42", nil)
		resp, err := hc.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(resp.Status)
	}

	// A scope beyond the delegation is refused by the STS.
	req, _ := http.NewRequestWithContext(caracal.WithRequestScopes(reader.Context(), "tickets:write"),
		http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets/42", nil)
	_, err = hc.Do(req)
	fmt.Println(err != nil)
	// Output:
	// 200 OK
	// 200 OK
	// true
}

func ExampleClient_Middleware() {
	st, c := exampleStack()
	defer st.Close()
	ctx := context.Background()
	defer c.Close(ctx)

	// A resource server verifies the Gateway's resource tokens and reads
	// the calling agent from the request's context.
	mw, err := c.Middleware(caracal.VerifyTokens("resource://tickets"))
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agent, _ := caracal.FromContext(r.Context())
		fmt.Fprintf(w, "hop %d", agent.Hop())
	})))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/tickets/1")
	if err != nil {
		log.Fatal(err)
	}
	var refusal struct {
		Error string `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&refusal)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, refusal.Error)
	// Output:
	// 401 missing_token
}

func ExampleClient_Delegate() {
	st, c := exampleStack()
	defer st.Close()
	ctx := context.Background()
	defer c.Close(ctx)

	dispatcher, err := c.Spawn(ctx, caracal.WithLabels("dispatcher"))
	if err != nil {
		log.Fatal(err)
	}
	defer dispatcher.Close(ctx)
	peer, err := c.Spawn(ctx, caracal.WithLabels("reader"))
	if err != nil {
		log.Fatal(err)
	}
	defer peer.Close(ctx)

	d, err := c.Delegate(dispatcher.Context(), peer.ID(),
		caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, 5*time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("delegated:", d.Scopes, "on", d.Resource)

	// The peer's process binds the delegation it was handed.
	peerCtx, err := c.AcceptDelegation(peer.Context(), d.ID)
	if err != nil {
		log.Fatal(err)
	}
	agent, _ := caracal.FromContext(peerCtx)
	fmt.Println("peer presents it:", agent.DelegationID() == d.ID, "hop", agent.Hop())

	req, _ := http.NewRequestWithContext(peerCtx, http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets/7", nil)
	resp, err := c.HTTPClient(caracal.WithScopes("tickets:read")).Do(req)
	if err != nil {
		log.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output:
	// delegated: [tickets:read] on resource://tickets
	// peer presents it: true hop 1
	// 200 OK
}
