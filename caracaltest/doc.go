// Package caracaltest runs a Caracal deployment in-process, for tests and
// examples: an STS, a Coordinator and a Gateway sharing one state, and an
// upstream resource server per resource, speaking the Caracal v1 wire
// protocol closely enough that code which passes against it works against a
// real deployment unchanged.
//
// # Starting a stack
//
// Start gives a test a seeded stack and closes it when the test ends:
//
//	func TestTickets(t *testing.T) {
//		s := caracaltest.Start(t)
//		c, err := s.NewClient()
//		if err != nil {
//			t.Fatal(err)
//		}
//		defer c.Close(t.Context())
//		// ... spawn sessions, call resource://tickets through the Gateway ...
//	}
//
// The seeded zone "zone-test" has one application, "app-test" (with a random
// client secret), and one resource, "resource://tickets", with scopes
// tickets:read, tickets:write and tickets:delete, owned by app-test. Its
// roles (session labels) are reader (tickets:read), writer (tickets:read,
// tickets:write) and admin (all three); tickets:delete is in risk tier
// "high", which needs an operator's approval (see Approve). Options add
// applications, resources, grants, risk tags and approval tiers, or start
// from an empty zone with WithoutDefaults:
//
//	s := caracaltest.Start(t,
//		caracaltest.WithResource(caracaltest.Resource{
//			Identifier: "resource://docs",
//			Scopes:     []string{"docs:read"},
//		}),
//		caracaltest.WithGrant("resource://docs", "app-test",
//			map[string][]string{"reader": {"docs:read"}}),
//	)
//
// A program (an example, a demo) uses New and Close instead of Start.
//
// # Connecting
//
// Config is a ready client configuration for the first application, with a
// binding from each resource's upstream URL to the resource, so requests a
// client sends to UpstreamURL("resource://tickets") go through the Gateway;
// NewClient builds a client from it. WriteConfig writes the same
// configuration as a caracal.toml profile with an owner-only secret file,
// for code that loads its configuration itself.
//
// Unless a resource brings its own Upstream handler or UpstreamURL, its
// upstream is an echo server: it answers every request with an EchoResponse
// describing what reached it (method, path, query, the claims of the token
// the Gateway sent, propagation headers, body), so a test can see what the
// Gateway forwarded. SetUpstream replaces an in-process upstream after the
// stack started, for a handler that needs a client of the stack (a resource
// server behind caracal's Middleware).
//
// # Sockets or memory
//
// By default each service listens on its own loopback port. With InMemory
// nothing listens: the services live at http://sts.caracal.internal,
// http://coordinator.caracal.internal, http://gateway.caracal.internal and
// one host under upstream.caracal.internal per resource, named after its ID
// (UpstreamURL gives it), reachable only through Transport or HTTPClient
// (ClientOptions passes that client to NewClient).
// An in-memory stack runs inside a testing/synctest bubble, where timers,
// deadlines and the stack's own clock all follow the bubble's fake time:
//
//	synctest.Test(t, func(t *testing.T) {
//		s := caracaltest.Start(t, caracaltest.InMemory())
//		c, _ := s.NewClient()
//		defer c.Close(t.Context())
//		// ... a heartbeat loop that runs for an hour takes no real time ...
//	})
//
// Start the stack inside the bubble that uses it: one started outside (in
// a parent test, say) keeps its sweepers on real time while its requests see
// the bubble's, and expires sessions the bubble still holds live.
// Close the client before the bubble's function returns, so that its
// background work (service leases, mandate pools) ends with the test
// instead of running on in the bubble's fake time until it gives up.
//
// The in-memory transport answers as net/http's server over a connection
// does (header, length, body, trailers, where a body is cut), except:
//
//   - A request whose handler panics with http.ErrAbortHandler before its
//     header went out fails with an error wrapping io.ErrUnexpectedEOF;
//     over a connection it wraps io.EOF.
//   - After the header went out, such a handler's body is cut after
//     everything it wrote; net/http's server also loses what it buffered
//     since its last flush (up to 2 KB), so over a connection the client
//     may read less, and a body of which all its Content-Length was
//     written may end cut.
//   - A handler may read the request body after its header went out (a
//     Flush, or more than 2 KB written); net/http's server then discards
//     the rest of the body and fails further reads.
//   - A Content-Length the handler set that is not a length: over a
//     connection, a body that is not chunked (a HEAD answer, or one with
//     Transfer-Encoding: identity) carries it to the client, whose round
//     trip fails; in memory the response goes without a length.
//   - Reading a response body after Close fails, even an empty one;
//     net/http's client hands out an empty body as http.NoBody, which
//     reads io.EOF.
//   - Once the request's context is cancelled, reading the body fails at
//     once with the context's cause; over a connection, what was already
//     received may be read first.
//
// # Time
//
// The stack reads time from its Clock, by default the time package's (the
// bubble's inside testing/synctest); the Coordinator's lease and TTL
// sweepers then run once a second. WithClock(NewFakeClock(t0)) pins it
// instead: the clock moves only on Advance or Set, which also run the
// sweepers, and Sweep runs them on demand.
//
// # Faults and the record
//
// Inject scripts a route's misbehaviour, by route pattern (RouteToken,
// RouteStart, RouteGateway, ...): an error status with the service's own
// error body, a Retry-After, a delay, a dropped connection, for the next N
// requests or for a time window:
//
//	s.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Status: 503, Times: 2})
//
// Every request the services receive is recorded, with credentials
// redacted; Requests and Count let a test assert on what went over the
// wire:
//
//	if n := s.Count(caracaltest.RouteToken); n != 1 {
//		t.Errorf("%d token requests, want 1 (the lifecycle token is cached)", n)
//	}
//
// Approve, Reject, Suspend, Resume, Terminate, SessionInfo and EdgeInfo act
// on and look into the shared state, as an operator's console would.
//
// # Key rotation
//
// The zone starts with one signing key. RotateSigningKey rotates it as the
// STS does: tokens issued afterwards carry the new key id, and the JWKS
// serves the new key and the previous one until 24 h after the rotation on
// the stack's Clock, so a test can check that a resource server keeps
// accepting tokens across a rotation:
//
//	kid := s.RotateSigningKey()
//	// ... calls through the Gateway now reach the server with tokens under kid ...
//
// caracal's VerifyTokens middleware refetches the key set on the first token
// under the new key id, but at most once every 30 s: right after a fetch
// caused by a key id it did not know (the first fetch is one), it refuses
// tokens under a new key until the 30 s have passed. It keeps that
// time on its own clock, which a FakeClock does not move: inside
// testing/synctest with InMemory, sleeping out the 30 s takes no real time.
//
// # What the stack leaves out
//
// The stack implements what a client of the three services can observe on
// the SDK's routes. It leaves out what needs infrastructure a test does not
// have, or what only operators use:
//
//   - Identity federation: there are no subject issuers, so a subject_token
//     exchange is refused (401 invalid_token) and no session is anchored to
//     a user record.
//   - The Gateway's exchange runs in process: no HMAC (signature headers
//     sent by a client are refused), no revocation snapshot age (§8.2 row
//     0), no STS circuit breaker (row 13), no provider credential modes
//     (every upstream gets the use=resource token as a Bearer), no upstream
//     host allowlist. Inject a fault to simulate an outage.
//   - The Coordinator's per-IP rate limit (600 requests a minute), which
//     would only slow tests down; inject a 429 to test a client's handling.
//   - Policy restrictions, label confinement and policy-set versions: the
//     policy is the grants, risk tiers and approval tiers given as options.
//   - Operator routes (effective authority, outbound and active edge lists,
//     traverse, impact, service registrations, invocations, /v1/verify) and
//     the federated approval decision route; the Stack's methods take their
//     place.
package caracaltest
