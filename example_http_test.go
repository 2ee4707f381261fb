package caracal_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
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
	fmt.Println("gateway requests:", st.Count(caracaltest.RouteGateway))

	// A scope beyond the delegation is refused by the STS.
	req, _ := http.NewRequestWithContext(caracal.WithRequestScopes(reader.Context(), "tickets:write"),
		http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets/42", nil)
	_, err = hc.Do(req)
	var refusal *caracal.Error
	if errors.As(err, &refusal) {
		fmt.Println(refusal.Service, refusal.StatusCode, refusal.Code)
	}
	// Output:
	// 200 OK
	// 200 OK
	// gateway requests: 2
	// sts 403 access_denied
}

func ExampleClient_Middleware() {
	st, c := exampleStack()
	defer st.Close()
	ctx := context.Background()
	defer c.Close(ctx)

	// A resource server verifies the Gateway's resource tokens and reads
	// the calling agent from the request's context. Here it is the upstream
	// of resource://tickets behind the stack's Gateway.
	mw, err := c.Middleware(caracal.VerifyTokens("resource://tickets"))
	if err != nil {
		log.Fatal(err)
	}
	err = st.SetUpstream("resource://tickets", mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agent, _ := caracal.FromContext(r.Context())
		fmt.Fprintf(w, "hop %d", agent.Hop())
	})))
	if err != nil {
		log.Fatal(err)
	}
	url := st.UpstreamURL("resource://tickets") + "/tickets/1"

	// A request that did not come through the Gateway carries no token.
	resp, err := http.Get(url)
	if err != nil {
		log.Fatal(err)
	}
	var refusal struct {
		Error string `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&refusal)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, refusal.Error)

	// An agent's request through the Gateway reaches the handler with the
	// agent bound.
	root, err := c.Spawn(ctx)
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
	req, _ := http.NewRequestWithContext(reader.Context(), http.MethodGet, url, nil)
	resp, err = c.HTTPClient(caracal.WithScopes("tickets:read")).Do(req)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))
	// Output:
	// 401 missing_token
	// 200 hop 1
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

func ExampleClient_GatewayRequest() {
	st, c := exampleStack()
	defer st.Close()
	ctx := context.Background()
	defer c.Close(ctx)

	root, err := c.Spawn(ctx)
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

	// The request names the resource instead of an upstream URL, so it
	// needs no binding; the transport still mints its mandate.
	req, err := c.GatewayRequest(reader.Context(), http.MethodGet, "resource://tickets", "/tickets/42?fields=title", nil)
	if err != nil {
		log.Fatal(err)
	}
	resp, err := c.HTTPClient(caracal.WithScopes("tickets:read")).Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var echo caracaltest.EchoResponse
	if err := json.NewDecoder(resp.Body).Decode(&echo); err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Status, echo.Path, echo.Query["fields"], "as", echo.Claims.Scope)
	// Output:
	// 200 OK /tickets/42 [title] as tickets:read
}

func ExampleClient_WaitApproval() {
	st, c := exampleStack()
	defer st.Close()
	ctx := context.Background()
	defer c.Close(ctx)

	root, err := c.Spawn(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer root.Close(ctx)
	admin, err := c.Spawn(root.Context(), caracal.WithLabels("admin"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:delete"}, "resource://tickets", caracal.Constraints{}, 5*time.Minute)))
	if err != nil {
		log.Fatal(err)
	}
	defer admin.Close(ctx)

	hc := c.HTTPClient(caracal.WithScopes("tickets:delete"))
	deleteTicket := func() (*http.Response, error) {
		req, _ := http.NewRequestWithContext(admin.Context(), http.MethodDelete, st.UpstreamURL("resource://tickets")+"/tickets/42", nil)
		return hc.Do(req)
	}

	// tickets:delete is in a risk tier that needs a human's approval, so
	// the mint is held and nothing reaches the Gateway.
	_, err = deleteTicket()
	var held *caracal.ApprovalRequiredError
	if !errors.As(err, &held) {
		log.Fatal(err)
	}
	fmt.Println("held:", held.Scopes, "on", held.Resource, "tier", held.Tier)

	// An operator decides elsewhere; here the stack plays the console.
	go st.Approve(held.ApprovalID)
	if err := c.WaitApproval(ctx, held.ApprovalID); err != nil {
		log.Fatal(err)
	}

	// The same request again consumes the approved hold.
	resp, err := deleteTicket()
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output:
	// held: [tickets:delete] on resource://tickets tier high
	// 200 OK
}

func ExampleClient_RevokeDelegation() {
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
		caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	peerCtx, err := c.AcceptDelegation(peer.Context(), d.ID)
	if err != nil {
		log.Fatal(err)
	}

	// The job is done early: take the authority back before it expires.
	// The Coordinator also ends the session that held it, and so does
	// this client: its Context ends, and it makes no more calls.
	if err := c.RevokeDelegation(ctx, d.ID); err != nil {
		log.Fatal(err)
	}
	edge, _ := st.EdgeInfo(d.ID)
	fmt.Println("edge:", edge.Status)
	info, _ := st.SessionInfo(peer.ID())
	fmt.Println("peer:", info.Status)

	req, _ := http.NewRequestWithContext(peerCtx, http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets/7", nil)
	_, err = c.HTTPClient(caracal.WithScopes("tickets:read")).Do(req)
	fmt.Println("peer closed here:", errors.Is(err, caracal.ErrSessionClosed), peer.Context().Err() != nil)
	// Output:
	// edge: revoked
	// peer: terminated
	// peer closed here: true true
}

// A service that trusts the agents of its own application accepts the
// lifecycle token Headers sends on a direct call, not only the Gateway's
// resource tokens. Such a token names the application only, not a session.
func ExampleAcceptSessionTokens() {
	st, c := exampleStack()
	defer st.Close()
	ctx := context.Background()
	defer c.Close(ctx)

	mw, err := c.Middleware(caracal.VerifyTokens("resource://tickets", caracal.AcceptSessionTokens()))
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, _ := caracal.FromContext(r.Context())
		fmt.Fprintf(w, "called by %s (session named: %t)", a.ApplicationID(), a.SessionID() != "")
	})))
	defer srv.Close()

	s, err := c.Spawn(ctx, caracal.WithLabels("dispatcher"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx)
	h, err := c.Headers(s.Context())
	if err != nil {
		log.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(s.Context(), http.MethodGet, srv.URL+"/status", nil)
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))
	// Output:
	// 200 called by app-test (session named: false)
}

func ExampleClient_Transport() {
	st, c := exampleStack()
	defer st.Close()
	ctx := context.Background()
	defer c.Close(ctx)

	root, err := c.Spawn(ctx)
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

	// An http.Client of one's own around the transport returns redirects
	// to the caller, as HTTPClient's does.
	hc := &http.Client{
		Transport:     c.Transport(nil, caracal.WithScopes("tickets:read")),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}

	// A URL outside every resource binding is sent as it is: no bearer.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "authorization %q", r.Header.Get("Authorization"))
	}))
	defer other.Close()
	get := func(url string) (int, string) {
		req, _ := http.NewRequestWithContext(reader.Context(), http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	status, _ := get(st.UpstreamURL("resource://tickets") + "/tickets/1")
	fmt.Println("tickets:", status, "gateway requests:", st.Count(caracaltest.RouteGateway))
	fmt.Println(get(other.URL))
	// Output:
	// tickets: 200 gateway requests: 1
	// 200 authorization ""
}
