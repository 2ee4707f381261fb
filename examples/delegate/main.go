// Command delegate grants part of an agent's authority to another, already
// running session: the dispatcher delegates tickets:read on one resource to
// a peer, the peer accepts the delegation and calls the resource with it,
// and the dispatcher finally revokes it, which ends the peer's session.
//
//	go run ./examples/delegate
package main

import (
	"context"
	"errors"
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
	if err := run(ctx, os.Environ(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "delegate:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, environ []string, out io.Writer) (err error) {
	say := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }
	env, err := exampleenv.Connect(environ)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, env.Close(context.WithoutCancel(ctx))) }()
	c := env.Client
	say("Connected to %s.", env.Where())

	dispatcher, err := c.Spawn(ctx, caracal.WithoutParent(), caracal.WithLabels("dispatcher"))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, dispatcher.Close(context.WithoutCancel(ctx))) }()
	// The peer runs on its own (another goroutine or process); it holds no
	// authority until someone delegates to it.
	peer, err := c.Spawn(ctx, caracal.WithoutParent(), caracal.WithLabels("reader"))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, peer.Close(context.WithoutCancel(ctx))) }()
	say("Dispatcher %s and peer %s are running.", dispatcher.ID(), peer.ID())

	d, err := c.Delegate(dispatcher.Context(), peer.ID(),
		caracal.Grant.Narrow([]string{"tickets:read"}, env.Resource, caracal.Constraints{}, 5*time.Minute))
	if err != nil {
		return fmt.Errorf("delegate: %w", err)
	}
	say("Dispatcher delegated %v on %s to the peer: delegation %s until %s.",
		d.Scopes, d.Resource, d.ID, d.ExpiresAt.Format(time.RFC3339))
	say("  the dispatcher's own context is unchanged: delegation %q.", dispatcher.Agent().DelegationID())

	// The peer's process receives d.ID out of band and binds it.
	peerCtx, err := c.AcceptDelegation(peer.Context(), d.ID)
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	agent, _ := caracal.FromContext(peerCtx)
	say("Peer accepted delegation %s (hop %d).", agent.DelegationID(), agent.Hop())

	hc := c.HTTPClient(caracal.WithScopes("tickets:read"))
	call := func() (int, error) {
		req, err := http.NewRequestWithContext(peerCtx, http.MethodGet, strings.TrimSuffix(env.URL, "/")+"/tickets/7", nil)
		if err != nil {
			return 0, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	status, err := call()
	if err != nil {
		return fmt.Errorf("peer call: %w", err)
	}
	say("  peer called the resource: %d %s.", status, http.StatusText(status))
	if status != http.StatusOK {
		return fmt.Errorf("the resource answered %d", status)
	}

	if err := c.RevokeDelegation(ctx, d.ID); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	say("Dispatcher revoked delegation %s; the peer's session ended with it.", d.ID)
	if _, err := call(); err == nil {
		return errors.New("the peer could still call the resource after the revocation")
	} else {
		say("  peer's next call is refused: %v", err)
	}
	return nil
}
