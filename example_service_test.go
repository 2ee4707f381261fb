package caracal_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/caracal-go/caracal"
)

func ExampleClient_SpawnService() {
	st, c := exampleStack()
	defer st.Close()
	ctx := context.Background()
	defer c.Close(ctx)

	// Renewal is manual unless HeartbeatInterval or HeartbeatAuto is given.
	svc, err := c.SpawnService(ctx, caracal.WithLabels("billing-worker"))
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close(ctx)

	lease, err := svc.Heartbeat(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("status:", lease.Status)
	fmt.Println("generation:", lease.Generation)
	fmt.Println("renewed for about:", time.Until(lease.Deadline).Round(time.Minute))
	// Output:
	// status: active
	// generation: 1
	// renewed for about: 2m0s
}

func ExampleClient_AttachService() {
	st, c := exampleStack()
	defer st.Close()
	ctx := context.Background()
	defer c.Close(ctx)

	first, err := c.SpawnService(ctx, caracal.WithLabels("billing-worker"))
	if err != nil {
		log.Fatal(err)
	}
	// After a restart, a process attaches to the persisted session id;
	// every older holder is fenced.
	attached, err := c.AttachService(ctx, first.ID())
	if err != nil {
		log.Fatal(err)
	}
	defer attached.Close(ctx)
	fmt.Println("generation:", attached.Generation())

	_, err = first.Heartbeat(ctx)
	fmt.Println("old holder fenced:", errors.Is(err, caracal.ErrLeaseFenced))
	<-first.Done()
	fmt.Println("its context ended:", errors.Is(context.Cause(first.Context()), caracal.ErrLeaseFenced))
	// Output:
	// generation: 2
	// old holder fenced: true
	// its context ended: true
}

func ExampleClient_Resume() {
	st, c := exampleStack()
	defer st.Close()
	ctx := context.Background()
	defer c.Close(ctx)

	svc, err := c.SpawnService(ctx)
	if err != nil {
		log.Fatal(err)
	}
	// An operator suspends the session (a lapsed lease does the same).
	if err := st.Suspend(svc.ID()); err != nil {
		log.Fatal(err)
	}
	_, err = svc.Heartbeat(ctx)
	fmt.Println("suspended:", errors.Is(err, caracal.ErrSuspended))

	// The handle has ended; resume the session, then take the lease back.
	n, err := c.Resume(ctx, svc.ID())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sessions resumed:", n)
	again, err := c.AttachService(ctx, svc.ID())
	if err != nil {
		log.Fatal(err)
	}
	defer again.Close(ctx)
	lease, err := again.Heartbeat(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("status:", lease.Status)
	// Output:
	// suspended: true
	// sessions resumed: 1
	// status: active
}

func ExampleOnLeaseLost() {
	st, c := exampleStack()
	defer st.Close()
	ctx := context.Background()
	defer c.Close(ctx)

	lost := make(chan error, 1)
	svc, err := c.SpawnService(ctx, caracal.WithLabels("billing-worker"),
		caracal.OnLeaseLost(func(err error) { lost <- err }))
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close(ctx)

	// An operator terminates the session; the next renewal finds out.
	if err := st.Terminate(svc.ID()); err != nil {
		log.Fatal(err)
	}
	_, err = svc.Heartbeat(ctx)
	fmt.Println("heartbeat:", errors.Is(err, caracal.ErrLeaseLost))
	fmt.Println("callback:", errors.Is(<-lost, caracal.ErrLeaseLost))
	fmt.Println("context:", errors.Is(context.Cause(svc.Context()), caracal.ErrLeaseLost))
	// Output:
	// heartbeat: true
	// callback: true
	// context: true
}
