package caracaltest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/caracal-go/caracal"
)

// Defaults installed unless WithoutDefaults is given.
const (
	defaultZone        = "zone-test"
	defaultApplication = "app-test"
	defaultResource    = "resource://tickets"
)

// Option configures a Stack.
type Option func(*settings)

// settings collects the options of one stack.
type settings struct {
	zone       string
	apps       []App
	resources  []Resource
	grants     map[string]ResourceGrant
	risk       []Risk
	tiers      []ApprovalTier
	clock      Clock
	lease      time.Duration
	limits     Limits
	inMemory   bool
	noDefaults bool
	// extraRoutes are mounted next to the world's routes (tests of the
	// harness itself use them).
	extraRoutes []route
}

// WithZone sets the zone id (default "zone-test").
func WithZone(id string) Option { return func(s *settings) { s.zone = id } }

// WithApplication registers an application. The first application
// registered (app-test unless WithoutDefaults) is the one Config and
// NewClient use; registering one with the id of an earlier one replaces it.
// An empty Secret gets a random one.
func WithApplication(a App) Option {
	return func(s *settings) { s.apps = append(s.apps, a) }
}

// WithResource registers a resource; one with the identifier of an earlier
// one replaces it. A resource without Upstream and UpstreamURL is served by
// an echo upstream (see EchoResponse). A resource needs a policy grant
// (WithGrant) before any application can use it.
func WithResource(r Resource) Option {
	r.Scopes = slices.Clone(r.Scopes)
	if r.Operations != nil {
		ops := make(map[string]string, len(r.Operations))
		for k, v := range r.Operations {
			ops[k] = v
		}
		r.Operations = ops
	}
	return func(s *settings) { s.resources = append(s.resources, r) }
}

// WithGrant sets the policy grant of a resource: the application that owns
// it and the roles (session labels) that may use which of its scopes. It
// replaces any earlier grant of the resource, the default one included.
func WithGrant(resourceIdentifier, application string, roles map[string][]string) Option {
	g := ResourceGrant{Application: application, Roles: make(map[string][]string, len(roles))}
	for role, scopes := range roles {
		g.Roles[role] = slices.Clone(scopes)
	}
	return func(s *settings) {
		if s.grants == nil {
			s.grants = map[string]ResourceGrant{}
		}
		s.grants[resourceIdentifier] = g
	}
}

// WithRisk tags a scope with a risk tier; a later tag of the same scope
// replaces an earlier one.
func WithRisk(scope, tier string) Option {
	return func(s *settings) { s.risk = append(s.risk, Risk{Scope: scope, Tier: tier}) }
}

// WithApprovalTier gates a tier behind a human approval; a later gate of the
// same tier replaces an earlier one.
func WithApprovalTier(t ApprovalTier) Option {
	return func(s *settings) { s.tiers = append(s.tiers, t) }
}

// WithClock makes the stack read time from c. With a *FakeClock the
// sweepers run when the clock moves; with any other Clock they run once a
// second of real time (and on Sweep).
func WithClock(c Clock) Option { return func(s *settings) { s.clock = c } }

// WithLease sets the service-session lease (SERVICE_AGENT_LEASE_SECONDS,
// default 120 s).
func WithLease(d time.Duration) Option { return func(s *settings) { s.lease = d } }

// WithLimits sets the servers' tunable limits; zero fields keep the
// defaults.
func WithLimits(l Limits) Option { return func(s *settings) { s.limits = l } }

// InMemory serves the stack without sockets: the services are reachable only
// through Transport and HTTPClient, at http://sts.caracal.internal,
// http://coordinator.caracal.internal, http://gateway.caracal.internal and
// http://<resource id>.upstream.caracal.internal. Use it inside
// testing/synctest bubbles, where real network I/O would stall the fake
// clock.
func InMemory() Option { return func(s *settings) { s.inMemory = true } }

// WithoutDefaults starts from an empty zone: no default application,
// resource, grant, risk tag or approval tier. The zone id still defaults to
// "zone-test".
func WithoutDefaults() Option { return func(s *settings) { s.noDefaults = true } }

// defaultSettings is the seeded zone of a stack without WithoutDefaults.
func defaultSettings() settings {
	return settings{
		apps: []App{{ID: defaultApplication}},
		resources: []Resource{{
			Identifier: defaultResource,
			ID:         "res-tickets",
			Scopes:     []string{"tickets:read", "tickets:write", "tickets:delete"},
		}},
		grants: map[string]ResourceGrant{
			defaultResource: {
				Application: defaultApplication,
				Roles: map[string][]string{
					"reader": {"tickets:read"},
					"writer": {"tickets:read", "tickets:write"},
					"admin":  {"tickets:read", "tickets:write", "tickets:delete"},
				},
			},
		},
		risk:  []Risk{{Scope: "tickets:delete", Tier: "high"}},
		tiers: []ApprovalTier{{Tier: "high", Approver: "operator"}},
	}
}

// resolve merges the options over the defaults.
func resolve(opts []Option) (settings, error) {
	var o settings
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	s := settings{}
	if !o.noDefaults {
		s = defaultSettings()
	}
	s.zone = cmp.Or(o.zone, defaultZone)
	s.clock, s.lease, s.limits, s.inMemory = o.clock, o.lease, o.limits, o.inMemory
	s.extraRoutes = o.extraRoutes
	if s.clock == nil {
		s.clock = systemClock{}
	}
	s.apps = mergeBy(s.apps, o.apps, func(a App) string { return a.ID })
	s.resources = mergeBy(s.resources, o.resources, func(r Resource) string { return r.Identifier })
	s.risk = mergeBy(s.risk, o.risk, func(r Risk) string { return r.Scope })
	s.tiers = mergeBy(s.tiers, o.tiers, func(t ApprovalTier) string { return t.Tier })
	if s.grants == nil {
		s.grants = map[string]ResourceGrant{}
	}
	for id, g := range o.grants {
		s.grants[id] = g
	}

	if len(s.apps) == 0 {
		return s, errors.New("caracaltest: no application: add one with WithApplication")
	}
	for i := range s.apps {
		if s.apps[i].ID == "" {
			return s, errors.New("caracaltest: an application needs an ID")
		}
		if s.apps[i].Secret == "" {
			s.apps[i].Secret = "cs_" + rand.Text()
		}
	}
	for i := range s.resources {
		r := &s.resources[i]
		if r.Identifier == "" {
			return s, errors.New("caracaltest: a resource needs an Identifier")
		}
		if r.ID == "" {
			r.ID = resourceSlug(r.Identifier)
		}
	}
	return s, nil
}

// mergeBy appends add to base; an element whose key is already present
// replaces the earlier one in place.
func mergeBy[T any](base, add []T, key func(T) string) []T {
	out := slices.Clone(base)
	for _, v := range add {
		if i := slices.IndexFunc(out, func(e T) bool { return key(e) == key(v) }); i >= 0 {
			out[i] = v
		} else {
			out = append(out, v)
		}
	}
	return out
}

// Stack is a running in-process Caracal deployment: STS, Coordinator and
// Gateway over one shared state, plus an upstream per resource. It is safe
// for concurrent use.
type Stack struct {
	w     *world
	set   settings
	clock Clock

	stsURL, coordURL, gatewayURL string
	upstreamURLs                 map[string]string // resource identifier -> base URL

	mem      *memTransport
	faults   *faultSet
	rec      *recorder
	patterns map[string]string // route pattern -> service

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	gate   gate

	servers   []*http.Server
	serveDone sync.WaitGroup
	// upstreamNet carries the Gateway's calls to resources with their own
	// UpstreamURL; Close drops its idle connections.
	upstreamNet *http.Transport
	sweeping    chan struct{} // closed when the sweeper loop ends; nil without one
	unsweep     func()        // unregisters from a FakeClock

	closeOnce sync.Once
}

// Start starts a stack for a test and closes it when the test ends. It
// fails the test if the stack cannot start.
func Start(tb testing.TB, opts ...Option) *Stack {
	tb.Helper()
	s, err := New(opts...)
	if err != nil {
		tb.Fatalf("caracaltest: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// New starts a stack. The caller must Close it.
func New(opts ...Option) (*Stack, error) {
	set, err := resolve(opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Stack{
		set:          set,
		clock:        set.clock,
		upstreamURLs: map[string]string{},
		faults:       newFaultSet(set.clock),
		rec:          &recorder{},
		patterns:     map[string]string{},
		ctx:          ctx,
		cancel:       cancel,
	}
	s.mem = &memTransport{stack: ctx, hosts: map[string]http.Handler{}}
	if err := s.start(); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// start builds the world, mounts the routes and starts the servers.
func (s *Stack) start() error {
	var (
		stsL, coordL, gwL net.Listener
		upL               []net.Listener
	)
	listen := func() (net.Listener, string, error) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, "", fmt.Errorf("caracaltest: listen on loopback: %w", err)
		}
		return l, "http://" + l.Addr().String(), nil
	}
	var err error
	if s.set.inMemory {
		s.stsURL = "http://" + memSTSHost
		s.coordURL = "http://" + memCoordinatorHost
		s.gatewayURL = "http://" + memGatewayHost
	} else {
		if stsL, s.stsURL, err = listen(); err != nil {
			return err
		}
		if coordL, s.coordURL, err = listen(); err != nil {
			_ = stsL.Close()
			return err
		}
		if gwL, s.gatewayURL, err = listen(); err != nil {
			_ = stsL.Close()
			_ = coordL.Close()
			return err
		}
	}
	// Every listener is handed to a server below (or closed on failure).
	closeAll := func() {
		for _, l := range []net.Listener{stsL, coordL, gwL} {
			if l != nil {
				_ = l.Close()
			}
		}
		for _, l := range upL {
			_ = l.Close()
		}
	}

	// Upstreams: every resource without an UpstreamURL is served by the
	// harness (its own handler, or the echo upstream), recorded as
	// "upstream", at a URL of its own.
	resources := make([]Resource, len(s.set.resources))
	upHandlers := map[string]http.Handler{} // host -> handler
	usedHosts := map[string]bool{}
	for i, r := range s.set.resources {
		r.Scopes = slices.Clone(r.Scopes)
		if r.UpstreamURL != "" {
			s.upstreamURLs[r.Identifier] = r.UpstreamURL
			resources[i] = r
			continue
		}
		h := r.Upstream
		if h == nil {
			h = echoHandler{}
		}
		// The Gateway calls the handler in-process, within its own
		// request; direct callers reach it by URL, gated like a service.
		h = recordHandler(s.rec, s.clock, svcUpstream, h)
		r.Upstream = h
		if s.set.inMemory {
			host := upstreamHost(r.ID, usedHosts)
			upHandlers[host] = h
			r.UpstreamURL = "http://" + host
		} else {
			l, u, err := listen()
			if err != nil {
				closeAll()
				return err
			}
			upL = append(upL, l)
			upHandlers[l.Addr().String()] = h
			r.UpstreamURL = u
		}
		s.upstreamURLs[r.Identifier] = r.UpstreamURL
		resources[i] = r
	}

	policy := Policy{Grants: s.set.grants, Risk: s.set.risk, ApprovalTiers: s.set.tiers}
	s.upstreamNet = &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		ResponseHeaderTimeout: 30 * time.Second, // the Gateway's UPSTREAM_TIMEOUT
	}
	w, err := newWorld(worldConfig{
		Clock:     s.clock,
		Issuer:    s.stsURL,
		Zone:      s.set.zone,
		Apps:      s.set.apps,
		Resources: resources,
		Policy:    policy,
		Lease:     s.set.lease,
		Limits:    s.set.limits,
		UpstreamClient: &http.Client{
			// In-process upstreams by URL stay in memory; anything else
			// (a resource's own UpstreamURL) goes over the network.
			Transport: &memTransport{stack: s.ctx, hosts: upHandlers, fallback: s.upstreamNet},
			// The Gateway does not follow redirects (PROTOCOL §8.6).
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	})
	if err != nil {
		closeAll()
		return err
	}
	s.w = w

	services := []struct {
		name   string
		host   string
		l      net.Listener
		routes []route
	}{
		{svcSTS, memSTSHost, stsL, w.stsRoutes()},
		{svcCoordinator, memCoordinatorHost, coordL, w.coordinatorRoutes()},
		{svcGateway, memGatewayHost, gwL, w.gatewayRoutes()},
	}
	for i := range services {
		for _, rt := range s.set.extraRoutes {
			if rt.service == services[i].name {
				services[i].routes = append(services[i].routes, rt)
			}
		}
	}
	for _, svc := range services {
		mux := http.NewServeMux()
		for _, rt := range svc.routes {
			s.patterns[rt.pattern] = svc.name
			mux.Handle(rt.pattern, s.routeHandler(svc.name, rt.pattern, rt.handler))
		}
		var routed http.Handler = mux
		if len(svc.routes) == 1 && svc.routes[0].pattern == RouteGateway {
			// The Gateway judges every path itself, traversal included;
			// a ServeMux would clean "/a/../b" and "//" paths and answer
			// with a redirect before the Gateway saw them.
			rt := svc.routes[0]
			routed = s.routeHandler(svc.name, rt.pattern, rt.handler)
		}
		h := s.serve(recordHandler(s.rec, s.clock, svc.name, routed))
		if s.set.inMemory {
			s.mem.hosts[svc.host] = h
		} else {
			s.mem.hosts[svc.l.Addr().String()] = h
			s.listen(svc.l, h)
		}
	}
	for host, h := range upHandlers {
		s.mem.hosts[host] = s.serve(h)
	}
	for _, l := range upL {
		s.listen(l, s.serve(upHandlers[l.Addr().String()]))
	}

	if sched, ok := s.clock.(sweepScheduler); ok {
		s.unsweep = sched.addSweeper(w.sweep)
	} else {
		s.sweeping = make(chan struct{})
		go s.sweepLoop()
	}
	return nil
}

// upstreamHost is the in-memory host of a resource's upstream.
func upstreamHost(resourceID string, used map[string]bool) string {
	var b strings.Builder
	for _, r := range strings.ToLower(resourceID) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	label := strings.Trim(b.String(), "-")
	if label == "" {
		label = "res"
	}
	host := label + "." + memUpstreamDomain
	for n := 2; used[host]; n++ {
		host = fmt.Sprintf("%s-%d.%s", label, n, memUpstreamDomain)
	}
	used[host] = true
	return host
}

// listen serves h on l until Close.
func (s *Stack) listen(l net.Listener, h http.Handler) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// Requests see the stack's context, so Close ends long polls and
		// injected delays.
		BaseContext: func(net.Listener) context.Context { return s.ctx },
	}
	s.servers = append(s.servers, srv)
	s.serveDone.Add(1)
	go func() {
		defer s.serveDone.Done()
		_ = srv.Serve(l)
	}()
}

// serve admits requests to h while the stack is open, so that Close can
// wait for every handler to return.
func (s *Stack) serve(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.gate.enter() {
			dropConnection(w)
			return
		}
		defer s.gate.leave()
		h.ServeHTTP(w, r)
	})
}

// routeHandler wraps one route with fault injection and names its pattern
// in the record.
func (s *Stack) routeHandler(service, pattern string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setRecordedPattern(r.Context(), pattern)
		if f, ok := s.faults.take(pattern); ok && !f.serve(w, r, service, pattern) {
			return
		}
		h.ServeHTTP(w, r)
	})
}

// sweepLoop runs the sweepers once a second until Close (real-clock mode).
func (s *Stack) sweepLoop() {
	defer close(s.sweeping)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.w.sweep()
		case <-s.ctx.Done():
			return
		}
	}
}

// Close stops the stack: running requests see their context cancelled, the
// servers and the sweeper stop, and Close returns once every goroutine the
// stack started has ended. In-process upstream handlers must return when
// their request's context is done. Close is idempotent.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.gate.close()
		for _, srv := range s.servers {
			// Every handler has returned, so only idle connections are
			// left. Close rather than Shutdown: Shutdown waits up to 5 s
			// for connections that were opened but never sent a request.
			_ = srv.Close()
		}
		s.serveDone.Wait()
		if s.sweeping != nil {
			<-s.sweeping
		}
		if s.upstreamNet != nil {
			s.upstreamNet.CloseIdleConnections()
		}
		if s.unsweep != nil {
			s.unsweep()
		}
	})
	return nil
}

// gate counts running handlers and refuses new ones once closed.
type gate struct {
	mu     sync.Mutex
	n      int
	closed bool
	idle   chan struct{}
}

func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.n++
	return true
}

func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.n == 0 && g.idle != nil {
		close(g.idle)
		g.idle = nil
	}
}

// running returns how many handlers are running.
func (g *gate) running() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

// close refuses new handlers and waits for the running ones.
func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	if g.n == 0 {
		g.mu.Unlock()
		return
	}
	idle := make(chan struct{})
	g.idle = idle
	g.mu.Unlock()
	<-idle
}

// Config returns a client configuration for the stack's first application
// in client-secret mode: the three service URLs, every resource in the
// lifecycle audience, and a binding per resource from its upstream URL.
func (s *Stack) Config() caracal.Config {
	app := s.set.apps[0]
	cfg := caracal.Config{
		ZoneID:         s.set.zone,
		ApplicationID:  app.ID,
		ClientSecret:   app.Secret,
		STSURL:         s.stsURL,
		CoordinatorURL: s.coordURL,
		GatewayURL:     s.gatewayURL,
	}
	for _, r := range s.set.resources {
		cfg.Resources = append(cfg.Resources, r.Identifier)
		cfg.Bindings = append(cfg.Bindings, caracal.ResourceBinding{
			ResourceID:     r.Identifier,
			UpstreamPrefix: s.upstreamURLs[r.Identifier],
		})
	}
	slices.SortStableFunc(cfg.Bindings, func(a, b caracal.ResourceBinding) int {
		return len(b.UpstreamPrefix) - len(a.UpstreamPrefix)
	})
	return cfg
}

// ClientOptions returns the options a client needs besides Config: the
// in-memory HTTP client for an InMemory stack, nothing otherwise.
func (s *Stack) ClientOptions() []caracal.Option {
	if !s.set.inMemory {
		return nil
	}
	return []caracal.Option{caracal.WithHTTPClient(s.HTTPClient())}
}

// NewClient returns a client of the stack's first application: Config,
// then ClientOptions, then opts.
func (s *Stack) NewClient(opts ...caracal.Option) (*caracal.Client, error) {
	all := append(s.ClientOptions(), opts...)
	return caracal.NewFromConfig(s.Config(), all...)
}

// STSURL returns the STS base URL.
func (s *Stack) STSURL() string { return s.stsURL }

// CoordinatorURL returns the Coordinator base URL.
func (s *Stack) CoordinatorURL() string { return s.coordURL }

// GatewayURL returns the Gateway base URL.
func (s *Stack) GatewayURL() string { return s.gatewayURL }

// UpstreamURL returns the base URL of a resource's upstream (the echo
// upstream unless the resource has its own), or "" for an unknown resource.
func (s *Stack) UpstreamURL(resourceIdentifier string) string {
	return s.upstreamURLs[resourceIdentifier]
}

// Transport returns an http.RoundTripper that reaches the three services
// and the harness-served upstreams in-process, by their URLs, whether or not
// the stack also listens on loopback. Requests to other hosts fail.
func (s *Stack) Transport() http.RoundTripper { return s.mem }

// HTTPClient returns a new *http.Client using Transport.
func (s *Stack) HTTPClient() *http.Client { return &http.Client{Transport: s.mem} }

// Zone returns the zone id.
func (s *Stack) Zone() string { return s.set.zone }

// Application returns the stack's first application, secret included.
func (s *Stack) Application() App { return s.set.apps[0] }

// Issuer returns the issuer of the stack's tokens (the STS URL): the iss
// claim, and the audience of lifecycle tokens and gateway mandates.
func (s *Stack) Issuer() string { return s.stsURL }

// Inject installs a fault on a route, given by its pattern (one of the Route
// constants). Faults on one route apply in Inject order, each until its
// Times or For runs out. An unknown pattern panics: a typo would otherwise
// make the fault silently never happen.
//
// A negative Times, For, Delay or RetryAfter, or a Status outside 100-599,
// panics too.
func (s *Stack) Inject(pattern string, f Fault) {
	s.mustKnow("Inject", pattern)
	if f.Times < 0 || f.For < 0 || f.Delay < 0 || f.RetryAfter < 0 {
		panic(fmt.Sprintf("caracaltest: Inject(%q): negative Times, For, Delay or RetryAfter", pattern))
	}
	if f.Status != 0 && (f.Status < 100 || f.Status > 599) {
		panic(fmt.Sprintf("caracaltest: Inject(%q): invalid Status %d", pattern, f.Status))
	}
	s.faults.add(pattern, f)
}

// mustKnow panics unless pattern is a route of the stack.
func (s *Stack) mustKnow(caller, pattern string) {
	if _, ok := s.patterns[pattern]; ok {
		return
	}
	known := make([]string, 0, len(s.patterns))
	for p := range s.patterns {
		known = append(known, fmt.Sprintf("%q", p))
	}
	slices.Sort(known)
	panic(fmt.Sprintf("caracaltest: %s: no route %q (routes: %s)", caller, pattern, strings.Join(known, ", ")))
}

// ClearFaults removes every installed fault.
func (s *Stack) ClearFaults() { s.faults.clear() }

// Requests returns a copy of every request recorded since the start or the
// last ResetRecord, in arrival order.
func (s *Stack) Requests() []Request { return s.rec.all() }

// Count returns how many recorded requests a route served, by its pattern
// (one of the Route constants; "" counts upstream requests and requests no
// route matched). An unknown pattern panics, as in Inject, so that a typo
// cannot make a "no such request" assertion pass.
func (s *Stack) Count(pattern string) int {
	if pattern != "" {
		s.mustKnow("Count", pattern)
	}
	return s.rec.count(pattern)
}

// ResetRecord forgets the recorded requests.
func (s *Stack) ResetRecord() { s.rec.reset() }

// Approve approves a pending approval hold, as an operator would.
func (s *Stack) Approve(approvalID string) error { return s.w.decideApproval(approvalID, true) }

// Reject rejects a pending approval hold.
func (s *Stack) Reject(approvalID string) error { return s.w.decideApproval(approvalID, false) }

// Approvals lists the approval holds.
func (s *Stack) Approvals() []ApprovalInfo { return s.w.approvalList() }

// Sweep runs the Coordinator's lease and TTL sweepers now.
func (s *Stack) Sweep() { s.w.sweep() }

// Suspend suspends a session and its subtree, as an operator would.
func (s *Stack) Suspend(sessionID string) error { return s.w.suspend(sessionID) }

// Resume resumes a suspended session and its subtree.
func (s *Stack) Resume(sessionID string) error { return s.w.resume(sessionID) }

// Terminate ends a session and its subtree, revoking their edges.
func (s *Stack) Terminate(sessionID string) error { return s.w.terminate(sessionID) }

// SessionInfo returns the Coordinator's view of a session.
func (s *Stack) SessionInfo(id string) (SessionInfo, bool) { return s.w.sessionInfo(id) }

// EdgeInfo returns the Coordinator's view of a delegation edge.
func (s *Stack) EdgeInfo(id string) (EdgeInfo, bool) { return s.w.edgeInfo(id) }

// profileFile is the caracal.toml WriteConfig writes (PROTOCOL §2.3).
type profileFile struct {
	ZoneID              string              `toml:"zone_id"`
	ApplicationID       string              `toml:"application_id"`
	AppClientSecretFile string              `toml:"app_client_secret_file"`
	STSURL              string              `toml:"sts_url"`
	CoordinatorURL      string              `toml:"coordinator_url"`
	GatewayURL          string              `toml:"gateway_url"`
	Credentials         []profileCredential `toml:"credentials"`
}

type profileCredential struct {
	Resource       string `toml:"resource"`
	UpstreamPrefix string `toml:"upstream_prefix,omitempty"`
}

// WriteConfig writes a caracal.toml profile for Config into dir (created if
// missing), with the client secret in a separate file next to it; both are
// owner-only (0600), as the SDK requires of a secret file. It returns the
// profile's path, for CARACAL_CONFIG or caracal.WithConfigFile. An
// InMemory stack's profile names its in-memory URLs, so a client loaded
// from it still needs ClientOptions.
func (s *Stack) WriteConfig(dir string) (profilePath string, err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("caracaltest: WriteConfig: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("caracaltest: WriteConfig: %w", err)
	}
	cfg := s.Config()
	secretPath := filepath.Join(dir, "client-secret")
	if err := writeOwnerOnly(secretPath, []byte(cfg.ClientSecret+"\n")); err != nil {
		return "", fmt.Errorf("caracaltest: WriteConfig: %w", err)
	}
	p := profileFile{
		ZoneID:              cfg.ZoneID,
		ApplicationID:       cfg.ApplicationID,
		AppClientSecretFile: secretPath,
		STSURL:              cfg.STSURL,
		CoordinatorURL:      cfg.CoordinatorURL,
		GatewayURL:          cfg.GatewayURL,
	}
	for _, r := range s.set.resources {
		p.Credentials = append(p.Credentials, profileCredential{
			Resource:       r.Identifier,
			UpstreamPrefix: s.upstreamURLs[r.Identifier],
		})
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(p); err != nil {
		return "", fmt.Errorf("caracaltest: WriteConfig: %w", err)
	}
	profilePath = filepath.Join(dir, "caracal.toml")
	if err := writeOwnerOnly(profilePath, buf.Bytes()); err != nil {
		return "", fmt.Errorf("caracaltest: WriteConfig: %w", err)
	}
	return profilePath, nil
}

// writeOwnerOnly writes a 0600 file, tightening an existing file's mode.
func writeOwnerOnly(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
