// Command quickstart walks the Caracal flow end to end: connect, spawn a
// labelled agent, spawn a narrowed child, call a protected resource through
// the Gateway, watch the resource server receive the agent's identity, keep a
// service session alive with a few heartbeats, and close everything.
//
// With no Caracal configuration it runs on an embedded caracaltest stack:
//
//	go run ./examples/quickstart
//
// With CARACAL_CONFIG (or CARACAL_* variables) set it runs against that
// deployment, calling the resource binding with the longest upstream prefix
// (the first of Config().Bindings, whatever the order they were configured in):
//
//	CARACAL_CONFIG=$HOME/.config/caracal/caracal.toml go run ./examples/quickstart -scope tickets:read -label reader -path /tickets/42
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/examples/internal/exampleenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args, environ []string, out io.Writer) (err error) {
	flags := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	scope := flags.String("scope", "tickets:read", "scope the narrowed child receives and uses")
	label := flags.String("label", "reader", "label (policy role) of the narrowed child")
	path := flags.String("path", "/tickets/42", "path to call under the resource binding")
	if err := flags.Parse(args); err != nil {
		return err
	}
	say := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }

	env, err := exampleenv.Connect(environ)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, env.Close(context.WithoutCancel(ctx))) }()
	c := env.Client
	say("Connected to %s.", env.Where())

	// On the embedded stack, the resource server behind the Gateway is the
	// SDK's middleware in front of a handler that reports who called.
	if env.Stack != nil {
		mw, err := c.Middleware(caracal.VerifyTokens(env.Resource))
		if err != nil {
			return err
		}
		h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			agent, _ := caracal.FromContext(r.Context())
			say("  resource server: %s %s from session %s via delegation %s (hop %d)",
				r.Method, r.URL.Path, agent.SessionID(), agent.DelegationID(), agent.Hop())
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"ticket":%q,"status":"open"}`, strings.TrimPrefix(r.URL.Path, "/tickets/"))
		}))
		if err := env.Stack.SetUpstream(env.Resource, h); err != nil {
			return err
		}
	}

	root, err := c.Spawn(ctx, caracal.WithoutParent(), caracal.WithLabels("dispatcher"))
	if err != nil {
		return fmt.Errorf("spawn the root agent: %w", err)
	}
	defer func() { err = errors.Join(err, root.Close(context.WithoutCancel(ctx))) }()
	say("Spawned agent session %s labelled %v.", root.ID(), root.Labels())

	child, err := c.Spawn(root.Context(),
		caracal.WithLabels(*label),
		caracal.WithGrant(caracal.Grant.Narrow([]string{*scope}, env.Resource, caracal.Constraints{}, 10*time.Minute)))
	if err != nil {
		return fmt.Errorf("spawn the narrowed child: %w", err)
	}
	defer func() { err = errors.Join(err, child.Close(context.WithoutCancel(ctx))) }()
	say("Spawned narrowed child %s labelled %v: %s on %s via delegation %s.",
		child.ID(), child.Labels(), *scope, env.Resource, child.Agent().DelegationID())

	target := strings.TrimSuffix(env.URL, "/") + *path
	say("Calling GET %s through the Gateway...", target)
	req, err := http.NewRequestWithContext(child.Context(), http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	resp, err := c.HTTPClient(caracal.WithScopes(*scope)).Do(req)
	if err != nil {
		return fmt.Errorf("call the resource: %w", err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	resp.Body.Close()
	if err != nil {
		return err
	}
	say("  response: %s %s", resp.Status, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the resource answered %s", resp.Status)
	}

	svc, err := c.SpawnService(ctx, caracal.WithoutParent(), caracal.WithLabels("billing-worker"))
	if err != nil {
		return fmt.Errorf("spawn the service: %w", err)
	}
	say("Started service session %s labelled [billing-worker], lease generation %d.", svc.ID(), svc.Generation())
	if err := heartbeats(ctx, svc, 3, say); err != nil {
		return errors.Join(err, svc.Close(context.WithoutCancel(ctx)))
	}
	if err := svc.Close(ctx); err != nil {
		return fmt.Errorf("close the service: %w", err)
	}
	say("Closed the service; closing the child and the root session.")
	return nil
}

// heartbeats renews svc's lease by hand n times and says what each renewal
// gave.
func heartbeats(ctx context.Context, svc *caracal.Service, n int, say func(format string, a ...any)) error {
	for i := 1; i <= n; i++ {
		// The lease runs from when the heartbeat was sent: measured from
		// its answer, it would look shorter by the round trip.
		asked := time.Now()
		lease, err := svc.Heartbeat(ctx)
		if err != nil {
			return fmt.Errorf("heartbeat: %w", err)
		}
		say("  heartbeat %d: lease renewed for %s, generation %d, status %s.",
			i, lease.Deadline.Sub(asked).Round(time.Second), lease.Generation, lease.Status)
	}
	return nil
}
