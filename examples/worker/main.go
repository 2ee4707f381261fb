// Command worker runs a long-lived service agent: a service session kept
// alive by a background heartbeat while it works, then taken over after a
// "restart" by a second process that attaches to the same session by id.
// The takeover fences the first holder, which learns it has lost the lease.
//
//	go run ./examples/worker
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
	"github.com/caracal-go/caracal/examples/internal/exampleenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// run runs the worker against the deployment environ configures, or on an
// embedded stack started with stackOpts.
func run(ctx context.Context, args, environ []string, out io.Writer, stackOpts ...caracaltest.Option) (err error) {
	flags := flag.NewFlagSet("worker", flag.ContinueOnError)
	interval := flags.Duration("interval", time.Second, "background heartbeat interval")
	renewals := flags.Int("renewals", 2, "background renewals to wait for before the restart")
	if err := flags.Parse(args); err != nil {
		return err
	}
	say := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }

	env, err := exampleenv.ConnectUnbound(environ, stackOpts...)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, env.Close(context.WithoutCancel(ctx))) }()
	say("Connected to %s.", env.Where())

	// OnLeaseLost runs off the renewal goroutine; the channel lets the
	// worker see the loss in order with its own output.
	lost := make(chan error, 1)
	first, err := env.Client.SpawnService(ctx,
		caracal.WithoutParent(),
		caracal.WithLabels("billing-worker"),
		caracal.HeartbeatInterval(*interval),
		caracal.OnLeaseLost(func(err error) { lost <- err }))
	if err != nil {
		return fmt.Errorf("spawn the service: %w", err)
	}
	defer func() { err = errors.Join(err, first.Close(context.WithoutCancel(ctx))) }()
	id := first.ID() // a real worker persists this to attach after a restart
	say("Worker 1 started service session %s, generation %d, renewing every %s in the background.", id, first.Generation(), *interval)

	// Work while the lease renews in the background.
	deadline := first.Deadline()
	for seen := 0; seen < *renewals; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-first.Done():
			return fmt.Errorf("worker 1 lost its lease while working: %w", first.Err())
		case <-time.After(*interval / 4):
		}
		if d := first.Deadline(); d.After(deadline) {
			deadline = d
			seen++
			say("  worker 1: lease renewed in the background (renewal %d).", seen)
		}
	}

	// A restarted process attaches to the same session by id.
	second, err := env.NewClient(environ)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, second.Close(context.WithoutCancel(ctx))) }()
	attached, err := second.AttachService(ctx, id, caracal.HeartbeatInterval(*interval))
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	say("Worker 2 attached to session %s: generation %d; every older holder is fenced.", attached.ID(), attached.Generation())

	// Worker 1 finds out at its next renewal.
	select {
	case err := <-lost:
		say("  worker 1: lease lost: %v", err)
		say("  worker 1: its context ended, fenced: %t", errors.Is(context.Cause(first.Context()), caracal.ErrLeaseFenced))
	case <-ctx.Done():
		return ctx.Err()
	}

	if err := attached.Close(ctx); err != nil {
		return fmt.Errorf("close the attached service: %w", err)
	}
	say("Worker 2 closed the service session.")
	return nil
}
