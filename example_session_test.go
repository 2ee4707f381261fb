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

func ExampleGrant_narrow() {
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
