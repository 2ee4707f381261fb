// Package caracal is the Go SDK for Caracal: it gives AI agents short-lived,
// policy-approved authority instead of long-lived credentials.
//
// An application connects with New, which reads a caracal.toml profile, the
// CARACAL_* environment and explicit options (see LoadConfig). It then spawns
// agent sessions on the Caracal Coordinator; each session is bound into a
// context.Context, and everything the agent does with that context carries
// its identity.
//
//	c, err := caracal.New()
//	if err != nil { ... }
//	defer c.Close(ctx)
//
//	root, err := c.Spawn(ctx, caracal.WithLabels("dispatcher"))
//	if err != nil { ... }
//	defer root.Close(ctx)
//
// Authority flows to child sessions through delegations. A child inherits its
// parent's authority by default; caracal.Grant.Narrow gives it a smaller,
// resource-scoped, time-bounded subset, and caracal.Grant.None gives it none:
//
//	reader, err := c.Spawn(root.Context(),
//		caracal.WithLabels("reader"),
//		caracal.WithGrant(caracal.Grant.Narrow(
//			[]string{"tickets:read"}, "resource://tickets",
//			caracal.Constraints{}, 10*time.Minute)))
//
// Labels are the role names the zone's policy matches when the agent asks for
// a token, so a narrowed child needs a label whose role covers its scopes.
//
// Protected resources are called through the Caracal Gateway. The client's
// Transport reads the agent from each request's context, mints a fresh
// single-use mandate at the STS, and rewrites requests whose URL falls inside
// a configured resource binding to the Gateway:
//
//	hc := c.HTTPClient(caracal.WithScopes("tickets:read"))
//	req, _ := http.NewRequestWithContext(reader.Context(), "GET", "http://tickets.internal/tickets/42", nil)
//	resp, err := hc.Do(req)
//	if err != nil { ... }
//	defer resp.Body.Close()
//
// URLs outside every binding are sent as they are, without a Caracal bearer.
//
// Long-lived workers run as service sessions (SpawnService), kept alive by a
// heartbeat lease that renews manually (Service.Heartbeat) or in the
// background (HeartbeatInterval, HeartbeatAuto), and that reports its loss
// through the service's context, Done/Err and an OnLeaseLost callback.
//
// Resource servers receive agent identity with Middleware, which (with
// VerifyTokens) verifies the Gateway's resource token against the STS keys
// and binds the agent into the request's context, readable with FromContext.
//
// Errors from the STS and the Coordinator are *Error values with the HTTP
// status, the server's code and the request id; states a caller acts on match
// sentinels with errors.Is (ErrNotFound, ErrLeaseFenced, …). The Gateway's
// answer to a request, a refusal included, is the *http.Response the
// transport returns.
//
// The sub-package caracaltest runs a complete Caracal stack in-process for
// tests and examples.
package caracal
