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

func ExampleLoadConfig() {
	// The environment a deployment sets; WithLookupEnv reads it from a map
	// here so that the example does not depend on the process's own.
	env := map[string]string{
		"CARACAL_ZONE_ID":           "zone-prod",
		"CARACAL_APPLICATION_ID":    "app-billing",
		"CARACAL_APP_CLIENT_SECRET": "example-secret",
		"CARACAL_STS_URL":           "https://sts.example.com",
		"CARACAL_COORDINATOR_URL":   "https://coordinator.example.com",
		"CARACAL_GATEWAY_URL":       "https://gateway.example.com",
		"CARACAL_RESOURCES":         "resource://tickets=https://tickets.example.com/api",
	}
	cfg, err := caracal.LoadConfig(
		caracal.WithLookupEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }),
		// An explicit option beats the environment.
		caracal.WithZone("zone-staging"),
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("zone:", cfg.ZoneID)
	fmt.Println("application:", cfg.ApplicationID)
	fmt.Println("bindings:", cfg.Bindings)
	fmt.Println("secret printed:", strings.Contains(cfg.String(), "example-secret"))

	// Loading is all-or-nothing, and each problem names its source.
	env["CARACAL_DEFAULT_TTL_SECONDS"] = "forever"
	_, err = caracal.LoadConfig(caracal.WithLookupEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	fmt.Println(err)
	// Output:
	// zone: zone-staging
	// application: app-billing
	// bindings: [{resource://tickets https://tickets.example.com/api}]
	// secret printed: false
	// caracal: CARACAL_DEFAULT_TTL_SECONDS is "forever"; want a positive whole number of seconds
}
