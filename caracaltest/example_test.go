package caracaltest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"strings"
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

func ExampleStack_Requests() {
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

	s, err := c.Spawn(ctx, caracal.WithLabels("dispatcher"))
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		log.Fatal(err)
	}

	// What went over the wire, in order, with the credentials redacted.
	for _, r := range st.Requests() {
		fmt.Println(r.Service, r.Pattern, r.Status)
		if secret := r.Form.Get("client_secret"); secret != "" {
			fmt.Println("  client_secret:", secret)
		}
		if auth := r.Header.Get("Authorization"); auth != "" {
			fmt.Println("  authorization:", strings.HasPrefix(auth, "Bearer <use=session jti="))
		}
	}
	// Output:
	// sts POST /oauth/2/token 200
	//   client_secret: [redacted]
	// coordinator POST /zones/{zone}/agents 201
	//   authorization: true
	// coordinator DELETE /zones/{zone}/agents/{id} 204
	//   authorization: true
}

// A fake clock makes lifetimes testable without waiting for them.
func ExampleFakeClock() {
	clock := caracaltest.NewFakeClock(time.Now())
	st, err := caracaltest.New(caracaltest.WithClock(clock))
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

	s, err := c.Spawn(ctx, caracal.WithTTL(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx)

	clock.Advance(59 * time.Second)
	info, _ := st.SessionInfo(s.ID())
	fmt.Println("after 59s:", info.Status)
	// Advance runs the Coordinator's sweepers, so the TTL has been
	// enforced by the time it returns.
	clock.Advance(2 * time.Second)
	info, _ = st.SessionInfo(s.ID())
	fmt.Println("after 61s:", info.Status)
	// Output:
	// after 59s: active
	// after 61s: expired
}

// A stack for an application of one's own: a resource with its scopes and
// the roles (session labels) the policy grants them to.
func ExampleWithResource() {
	st, err := caracaltest.New(
		caracaltest.WithResource(caracaltest.Resource{
			Identifier: "resource://docs",
			Scopes:     []string{"docs:read", "docs:publish"},
		}),
		caracaltest.WithGrant("resource://docs", "app-test", map[string][]string{
			"editor": {"docs:read", "docs:publish"},
		}),
	)
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

	root, err := c.Spawn(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer root.Close(ctx)
	editor, err := c.Spawn(root.Context(), caracal.WithLabels("editor"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"docs:read"}, "resource://docs", caracal.Constraints{}, time.Hour)))
	if err != nil {
		log.Fatal(err)
	}
	defer editor.Close(ctx)

	req, _ := http.NewRequestWithContext(editor.Context(), http.MethodGet, st.UpstreamURL("resource://docs")+"/docs/1", nil)
	resp, err := c.HTTPClient(caracal.WithScopes("docs:read")).Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var echo caracaltest.EchoResponse
	if err := json.NewDecoder(resp.Body).Decode(&echo); err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Status, echo.Path, echo.Claims.Aud, echo.Claims.Scope)
	// Output:
	// 200 OK /docs/1 [resource://docs] docs:read
}

// A scope tagged with a gated risk tier is held for a human decision;
// the stack's Approve and Reject stand in for the operator.
func ExampleWithApprovalTier() {
	st, err := caracaltest.New(
		caracaltest.WithRisk("tickets:write", "sensitive"),
		caracaltest.WithApprovalTier(caracaltest.ApprovalTier{Tier: "sensitive", Approver: "operator"}),
	)
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

	root, err := c.Spawn(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer root.Close(ctx)
	writer, err := c.Spawn(root.Context(), caracal.WithLabels("writer"),
		caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:write"}, "resource://tickets", caracal.Constraints{}, time.Hour)))
	if err != nil {
		log.Fatal(err)
	}
	defer writer.Close(ctx)

	req, _ := http.NewRequestWithContext(writer.Context(), http.MethodPost, st.UpstreamURL("resource://tickets")+"/tickets", nil)
	_, err = c.HTTPClient(caracal.WithScopes("tickets:write")).Do(req)
	fmt.Println("held:", errors.Is(err, caracal.ErrApprovalRequired))
	for _, a := range st.Approvals() {
		fmt.Println(a.State, a.Tier, a.Approver, a.Scopes)
		if err := st.Reject(a.ID); err != nil {
			log.Fatal(err)
		}
		fmt.Println("rejected:", errors.Is(c.WaitApproval(ctx, a.ID), caracal.ErrApprovalRejected))
	}
	// Output:
	// held: true
	// pending sensitive operator [tickets:write]
	// rejected: true
}
