package caracaltest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Stack is a running in-process Caracal deployment: STS, Coordinator and
// Gateway over one shared state, plus an upstream per resource. It is safe
// for concurrent use.
type Stack struct {
	w     *world
	set   settings
	clock Clock

	stsURL, coordURL, gatewayURL string
	upstreamURLs                 map[string]string // resource identifier -> base URL
	// upstreams are the in-process upstreams, by resource identifier.
	upstreams map[string]*upstreamSlot

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
		tb.Fatal(err) // New's errors name the package
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
		upstreams:    map[string]*upstreamSlot{},
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
	var stsL, coordL, gwL net.Listener
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
	closeAll := func(upL []net.Listener) {
		for _, l := range append([]net.Listener{stsL, coordL, gwL}, upL...) {
			if l != nil {
				_ = l.Close()
			}
		}
	}

	resources, upHandlers, upL, err := s.harnessUpstreams(listen)
	if err != nil {
		closeAll(nil)
		return err
	}

	policy := zonePolicy{Grants: s.set.grants, Risk: s.set.risk, ApprovalTiers: s.set.tiers}
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
		closeAll(upL)
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
		h := s.serve(recordHandler(s.rec, s.clock, s.ctx, svc.name, s.router(svc.name, svc.routes)))
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

// router routes a request to one of the service's routes, each open to
// fault injection and recorded under its pattern; it registers the
// patterns for Inject.
func (s *Stack) router(service string, routes []route) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range routes {
		if rt.pattern == routeCoordOther {
			// The Coordinator's answer to a request no route matched:
			// recorded with no pattern, as at the other services.
			mux.Handle(rt.pattern, rt.handler)
			continue
		}
		s.patterns[rt.pattern] = service
		mux.Handle(rt.pattern, s.routeHandler(service, rt.pattern, rt.handler))
	}
	if len(routes) == 1 && routes[0].pattern == RouteGateway {
		// The Gateway judges every path itself, traversal included; a
		// ServeMux would clean "/a/../b" and "//" paths and answer with a
		// redirect before the Gateway saw them.
		rt := routes[0]
		return s.routeHandler(service, rt.pattern, rt.handler)
	}
	return mux
}

// harnessUpstreams serves every resource without an UpstreamURL from the
// harness (its own handler, or the echo upstream), recorded as "upstream",
// at a URL of its own. It returns the resources as the world sees them,
// the upstream handlers by host, and the loopback listeners it opened,
// which the caller hands to servers (it closes them itself on failure).
func (s *Stack) harnessUpstreams(listen func() (net.Listener, string, error)) (resources []Resource, upHandlers map[string]http.Handler, upL []net.Listener, _ error) {
	resources = make([]Resource, len(s.set.resources))
	upHandlers = map[string]http.Handler{} // host -> handler
	usedHosts := map[string]bool{}
	for i, r := range s.set.resources {
		r.Scopes = slices.Clone(r.Scopes)
		if r.UpstreamURL != "" {
			s.upstreamURLs[r.Identifier] = r.UpstreamURL
			resources[i] = r
			continue
		}
		slot := newUpstreamSlot(r.Upstream)
		s.upstreams[r.Identifier] = slot
		// The Gateway calls the handler in-process, within its own
		// request; direct callers reach it by URL, gated like a service.
		h := recordHandler(s.rec, s.clock, s.ctx, svcUpstream, slot)
		r.Upstream = h
		if s.set.inMemory {
			host := upstreamHost(r.ID, usedHosts)
			upHandlers[host] = h
			r.UpstreamURL = "http://" + host
		} else {
			l, u, err := listen()
			if err != nil {
				for _, l := range upL {
					_ = l.Close()
				}
				return nil, nil, nil, err
			}
			upL = append(upL, l)
			upHandlers[l.Addr().String()] = h
			r.UpstreamURL = u
		}
		s.upstreamURLs[r.Identifier] = r.UpstreamURL
		resources[i] = r
	}
	return resources, upHandlers, upL, nil
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
// servers and the sweeper stop, and Close returns once every handler, server
// loop and sweeper has ended. Over loopback, net/http's per-connection
// goroutines exit just after Close has closed their connections, so a check
// for leaked goroutines right after Close must give them a moment; an
// InMemory stack has none. In-process upstream handlers must return when
// their request's context is done; over loopback, connections whose
// handlers are still running a second later are closed. Close is
// idempotent and always returns nil.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		if idle := s.gate.shut(); idle != nil {
			s.awaitHandlers(idle)
		}
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

// closeGrace is how long Close lets running handlers finish their answers
// before it closes their connections.
const closeGrace = time.Second

// awaitHandlers waits for the running handlers to return. A handler blocked
// writing to a client that stopped reading ignores its cancelled context,
// so past closeGrace the servers are closed, which fails such writes.
// In memory no write can block past the stack's context.
func (s *Stack) awaitHandlers(idle <-chan struct{}) {
	if len(s.servers) > 0 {
		t := time.NewTimer(closeGrace)
		select {
		case <-idle:
		case <-t.C:
			for _, srv := range s.servers {
				_ = srv.Close()
			}
		}
		t.Stop()
	}
	<-idle
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

// shut refuses new handlers. It returns a channel closed once the running
// ones have returned, or nil when none is running.
func (g *gate) shut() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	if g.n == 0 {
		return nil
	}
	if g.idle == nil {
		g.idle = make(chan struct{})
	}
	return g.idle
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
