package caracal_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// exampleStack starts an in-process Caracal stack and a client of its
// application; examples run against it instead of a real deployment.
func exampleStack() (*caracaltest.Stack, *caracal.Client) {
	st, err := caracaltest.New()
	if err != nil {
		log.Fatal(err)
	}
	c, err := st.NewClient()
	if err != nil {
		log.Fatal(err)
	}
	return st, c
}

func ExampleNew() {
	st, err := caracaltest.New()
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	// The stack writes a caracal.toml profile as `caracal` would; an
	// application usually names it with CARACAL_CONFIG.
	dir, err := os.MkdirTemp("", "caracal-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	profile, err := st.WriteConfig(dir)
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	c, err := caracal.New(
		caracal.WithConfigFile(profile),
		// Keep the example independent of the process environment.
		caracal.WithLookupEnv(func(string) (string, bool) { return "", false }),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(ctx)

	cfg := c.Config()
	fmt.Println("zone:", cfg.ZoneID)
	fmt.Println("application:", cfg.ApplicationID)
	// Output:
	// zone: zone-test
	// application: app-test
}

func ExampleClient_Spawn() {
	st, c := exampleStack()
	defer st.Close()
	ctx := context.Background()
	defer c.Close(ctx)

	s, err := c.Spawn(ctx, caracal.WithLabels("dispatcher"), caracal.WithTTL(10*time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx)

	// Everything run with s.Context() acts as this agent.
	agent, _ := caracal.FromContext(s.Context())
	fmt.Println("bound:", agent.SessionID() == s.ID())
	fmt.Println("labels:", s.Labels())
	fmt.Println("root:", agent.Hop() == 0 && agent.DelegationID() == "")
	// Output:
	// bound: true
	// labels: [dispatcher]
	// root: true
}

func ExampleGrantBuilder_Narrow() {
	st, c := exampleStack()
	defer st.Close()
	ctx := context.Background()
	defer c.Close(ctx)

	root, err := c.Spawn(ctx, caracal.WithLabels("dispatcher"))
	if err != nil {
		log.Fatal(err)
	}
	defer root.Close(ctx)

	// The child may only read tickets, for five minutes. Its "reader"
	// label is the role the zone's policy grants tickets:read to.
	reader, err := c.Spawn(root.Context(),
		caracal.WithLabels("reader"),
		caracal.WithGrant(caracal.Grant.Narrow(
			[]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, 5*time.Minute)))
	if err != nil {
		log.Fatal(err)
	}
	defer reader.Close(ctx)

	edge, _ := st.EdgeInfo(reader.Agent().DelegationID())
	fmt.Println("delegated:", edge.Scopes, "on", edge.Resource)
	fmt.Println("hop:", reader.Agent().Hop())

	// Calls through the client's HTTP client mint a single-use mandate per
	// request and go through the Gateway.
	hc := c.HTTPClient(caracal.WithScopes("tickets:read"))
	req, err := http.NewRequestWithContext(reader.Context(), http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets/42", nil)
	if err != nil {
		log.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var echo caracaltest.EchoResponse
	if err := json.NewDecoder(resp.Body).Decode(&echo); err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.StatusCode, echo.Method, echo.Path, "as", echo.Claims.Scope)

	// A wider child is refused before anything is started.
	_, err = c.Spawn(reader.Context(), caracal.WithGrant(caracal.Grant.Narrow(
		[]string{"tickets:write"}, "resource://tickets", caracal.Constraints{}, time.Minute)))
	fmt.Println("wider child refused:", errors.Is(err, caracal.ErrInvalidGrant))
	// Output:
	// delegated: [tickets:read] on resource://tickets
	// hop: 1
	// 200 GET /tickets/42 as tickets:read
	// wider child refused: true
}

func ExampleClient_Headers() {
	st, c := exampleStack()
	defer st.Close()
	ctx := context.Background()
	defer c.Close(ctx)

	s, err := c.Spawn(ctx, caracal.WithLabels("dispatcher"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx)

	h, err := c.Headers(s.Context())
	if err != nil {
		log.Fatal(err)
	}
	var names []string
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Println(names)
	for _, m := range strings.Split(h.Get("Baggage"), ",") {
		key, _, _ := strings.Cut(m, "=")
		fmt.Println(key)
	}

	// Without a bound agent, Headers refuses unless asked for the
	// application's own identity.
	_, err = c.Headers(ctx)
	fmt.Println(errors.Is(err, caracal.ErrNoSession))
	// Output:
	// [Authorization Baggage Traceparent]
	// caracal.agent_session
	// caracal.hop
	// caracal.session
	// true
}

func ExampleGrantBuilder_None() {
	st, c := exampleStack()
	defer st.Close()
	ctx := context.Background()
	defer c.Close(ctx)

	root, err := c.Spawn(ctx, caracal.WithLabels("dispatcher"))
	if err != nil {
		log.Fatal(err)
	}
	defer root.Close(ctx)

	// The child starts with no authority: it is part of the root's session
	// tree, but cannot call resources until something delegates to it.
	worker, err := c.Spawn(root.Context(), caracal.WithLabels("reader"), caracal.WithGrant(caracal.Grant.None()))
	if err != nil {
		log.Fatal(err)
	}
	defer worker.Close(ctx)

	hc := c.HTTPClient(caracal.WithScopes("tickets:read"))
	read := func(ctx context.Context) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets/42", nil)
		resp, err := hc.Do(req)
		if err != nil {
			fmt.Println("refused; gateway requests:", st.Count(caracaltest.RouteGateway))
			return
		}
		resp.Body.Close()
		fmt.Println(resp.Status)
	}
	read(worker.Context())

	// Later the root hands it exactly the authority one job needs.
	d, err := c.Delegate(root.Context(), worker.ID(),
		caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	jobCtx, err := c.AcceptDelegation(worker.Context(), d.ID)
	if err != nil {
		log.Fatal(err)
	}
	read(jobCtx)
	// Output:
	// refused; gateway requests: 0
	// 200 OK
}

func ExampleNewContext() {
	st, c := exampleStack()
	defer st.Close()
	ctx := context.Background()
	defer c.Close(ctx)

	s, err := c.Spawn(ctx, caracal.WithLabels("reader"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx)

	// A worker that runs on a context of its own (a queue consumer, say)
	// receives the agent with the job and binds it, so that what it sends
	// carries the agent.
	jobs := make(chan *caracal.Agent, 1)
	jobs <- s.Agent()
	close(jobs)
	for a := range jobs {
		jobCtx := caracal.NewContext(context.Background(), a)
		bound, _ := caracal.FromContext(jobCtx)
		fmt.Println("bound:", bound.SessionID() == s.ID())
		h, err := c.Headers(jobCtx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("baggage names it:", strings.Contains(h.Get("Baggage"), "caracal.agent_session="+s.ID()))
	}

	_, ok := caracal.FromContext(context.Background())
	fmt.Println("a bare context binds an agent:", ok)
	// Output:
	// bound: true
	// baggage names it: true
	// a bare context binds an agent: false
}

func ExampleError() {
	st, c := exampleStack()
	defer st.Close()
	ctx := context.Background()
	defer c.Close(ctx)

	s, err := c.Spawn(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx)

	// Resuming a session that is not suspended is refused by the
	// Coordinator.
	_, err = c.Resume(ctx, s.ID())
	var apiErr *caracal.Error
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.Service, apiErr.StatusCode, apiErr.Code)
	}
	fmt.Println("conflict:", errors.Is(err, caracal.ErrConflict))
	// Output:
	// coordinator 409 session_not_found_or_not_suspended
	// conflict: true
}
