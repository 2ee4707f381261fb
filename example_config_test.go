package caracal_test

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

func ExampleNewFromConfig() {
	st, err := caracaltest.New()
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	// A configuration built in code (from a secret manager, say): no
	// profile or environment is read.
	app := st.Application()
	cfg := caracal.Config{
		ZoneID:         st.Zone(),
		ApplicationID:  app.ID,
		ClientSecret:   app.Secret,
		STSURL:         st.STSURL(),
		CoordinatorURL: st.CoordinatorURL(),
		GatewayURL:     st.GatewayURL(),
		Bindings: []caracal.ResourceBinding{
			{ResourceID: "resource://tickets", UpstreamPrefix: st.UpstreamURL("resource://tickets")},
		},
	}
	c, err := caracal.NewFromConfig(cfg, caracal.WithDefaultTTL(10*time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	defer c.Close(ctx)

	s, err := c.Spawn(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx)
	fmt.Println("session lives for:", time.Until(s.ExpiresAt()).Round(time.Minute))
	// Printing the client or its configuration never shows the secret.
	fmt.Println("secret printed:", strings.Contains(fmt.Sprint(c), app.Secret))
	// Output:
	// session lives for: 10m0s
	// secret printed: false
}

func ExampleWithIdempotencyKey() {
	st, c := exampleStack()
	defer st.Close()
	ctx := context.Background()
	defer c.Close(ctx)

	// The first attempt's outcome is unknown to the caller (a timeout,
	// say); repeating it with the same key cannot start a second session.
	key := "nightly-report-2026-11-28"
	first, err := c.Spawn(ctx, caracal.WithIdempotencyKey(key))
	if err != nil {
		log.Fatal(err)
	}
	again, err := c.Spawn(ctx, caracal.WithIdempotencyKey(key))
	if err != nil {
		log.Fatal(err)
	}
	defer again.Close(ctx)
	fmt.Println("same session:", again.ID() == first.ID())
	fmt.Println("start requests:", st.Count(caracaltest.RouteStart))
	// Output:
	// same session: true
	// start requests: 2
}
