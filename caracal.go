package caracal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/caracal-go/caracal/internal/coordclient"
	"github.com/caracal-go/caracal/internal/stsclient"
)

// Client is a connection to one Caracal zone as one application, made by
// New or NewFromConfig; a zero Client is not usable. It is safe for
// concurrent use; what changes after New (the token cache, the open
// sessions, the approval-gated scopes met, the close state) is behind locks
// or channels.
type Client struct {
	// cfg is behind a pointer so that fmt, which prints a handle's
	// unexported fields by reflection (a Session's client under %s, say),
	// finds an address there rather than the client secret.
	cfg  *Config
	http *http.Client
	// control is http without redirects, for the Caracal services.
	control *http.Client
	log     *slog.Logger
	sts     *stsclient.Client
	coord   *coordclient.Client

	// gates are the approval-gated scopes the client's transports met.
	gates gateSet

	// life ends, with the cause ErrClosed, when Close begins; background
	// work owned by the client (service leases, mandate prefetch) and the
	// retries of calls in flight stop on it.
	life context.Context
	end  context.CancelCauseFunc

	mu   sync.Mutex
	open map[closer]struct{} // sessions and services to retire on Close
	// received holds the delegations open handles received through this
	// client (Delegate, AcceptDelegation), for RevokeDelegation.
	received map[closer][]receivedEdge
	// lineage indexes the open sessions by the ids whose retire ends
	// them (see endRetired), so that a retire costs the handles it ends,
	// not a pass over every open one.
	lineage map[string]map[*Session]struct{}
	// services indexes the open services by session id, for the fencing of
	// this client's older handles on one service (see fenceHeld).
	services map[string][]*Service
	// acquiring holds, per service id, this client's lease acquires in
	// flight and the newest generation one of them returned (see
	// beginAcquire).
	acquiring map[string]*acquires

	// starting counts the starts in flight (Spawn, SpawnService,
	// AttachService), which Close waits for: one that ends after Close began
	// cannot hand out its session and retires it instead. unretired (under
	// mu) collects the failures of those retires, and of the retires of
	// given-up starts, which Close reports.
	starting  sync.WaitGroup
	starts    int // the starts in flight, as starting counts them (under mu)
	unretired []error

	// closing (under mu) holds the handles open when Close was first
	// called. closed is closed once a Close has seen every one of them
	// closed and every start in flight end, within its ctx; closeErr is
	// that outcome, which every later Close returns.
	closing  []closer
	closed   chan struct{}
	closeErr error
}

// closer is a session or service handle the client retires on Close.
type closer interface {
	Close(ctx context.Context) error
}

// Option configures New and NewFromConfig.
type Option func(*options)

// options is what the Option values collect. Config overrides are applied in
// order, after the environment and the profile file (explicit options win).
type options struct {
	lookupEnv  func(string) (string, bool)
	httpClient *http.Client
	logger     *slog.Logger
	configFile string
	strict     bool
	overrides  []func(*Config)
}

// WithHTTPClient sets the HTTP client used for the STS and the Coordinator
// (and for the STS key set Middleware fetches); its Transport is also the
// default base of Transport and HTTPClient, so Gateway requests use it too.
// Its Timeout, if zero, is left alone: every control-plane call gets its own
// deadline from the SDK. Its CheckRedirect is not used for those calls: a
// redirect from a Caracal service is returned as an error, never followed,
// so that no credential goes to an address that was not configured. Without
// it (or with nil) the client uses http.DefaultTransport.
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) { o.httpClient = hc }
}

// WithLogger sets the logger; nil (the default) logs nothing. Secrets are
// never logged.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithLookupEnv replaces os.LookupEnv for reading CARACAL_* variables, so
// that tests and embedders never touch the process environment; nil means
// os.LookupEnv.
func WithLookupEnv(lookup func(string) (string, bool)) Option {
	return func(o *options) { o.lookupEnv = lookup }
}

// New loads the configuration (see LoadConfig for sources and precedence) and
// returns a Client. It makes no network call.
func New(opts ...Option) (*Client, error) {
	o := collect(opts)
	cfg, err := load(&o)
	if err != nil {
		return nil, err
	}
	return newClient(cfg, &o), nil
}

// NewFromConfig returns a Client for a configuration built in code. The
// options that set configuration keys (WithZone, WithClientSecret, ...)
// apply on top of cfg; no environment or profile is read, so WithConfigFile
// and WithStrictConfig are refused (use New for them).
func NewFromConfig(cfg Config, opts ...Option) (*Client, error) {
	o := collect(opts)
	if o.configFile != "" || o.strict {
		return nil, errors.New("caracal: NewFromConfig reads no profile, so WithConfigFile and WithStrictConfig have no effect there; load the profile with New (or LoadConfig) instead")
	}
	// The client keeps its own slices: options append to them, and the
	// caller may reuse cfg's afterwards.
	cfg = cfg.clone()
	for _, set := range o.overrides {
		set(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newClient(cfg, &o), nil
}

func collect(opts []Option) options {
	var o options
	apply(&o, opts)
	return o
}

// apply runs the options on cfg in order, skipping nil ones.
func apply[T any, O ~func(*T)](cfg *T, opts []O) {
	for _, o := range opts {
		if o != nil {
			o(cfg)
		}
	}
}

func newClient(cfg Config, o *options) *Client {
	hc := o.httpClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	log := o.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Caracal services never redirect. Following one would send the client
	// secret (in the token form, which net/http re-sends on a 307 or 308)
	// or a bearer to an address nobody configured, so the STS, Coordinator
	// and JWKS calls go through a copy of hc that returns the redirect as
	// the answer, an error that names it.
	control := *hc
	control.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	sts := stsclient.New(stsclient.Config{
		BaseURL:        cfg.STSURL,
		ZoneID:         cfg.ZoneID,
		ApplicationID:  cfg.ApplicationID,
		ClientSecret:   cfg.ClientSecret,
		BootstrapToken: cfg.BootstrapToken,
		Resources:      cfg.audience(),
		HTTPClient:     &control,
		Logger:         log,
	})
	life, end := context.WithCancelCause(context.Background())
	return &Client{
		cfg:     &cfg,
		http:    hc,
		control: &control,
		log:     log,
		sts:     sts,
		coord: coordclient.New(coordclient.Config{
			BaseURL:    cfg.CoordinatorURL,
			ZoneID:     cfg.ZoneID,
			HTTPClient: &control,
			Tokens:     sts,
			Logger:     log,
			Closing:    life,
		}),
		life:   life,
		end:    end,
		open:   make(map[closer]struct{}),
		closed: make(chan struct{}),
	}
}

// Config returns the client's configuration. Its String method hides secrets.
func (c *Client) Config() Config { return c.config().clone() }

// config is the client's configuration; a nil or zero Client (not made by
// New) has the zero one.
func (c *Client) config() *Config {
	if c == nil || c.cfg == nil {
		return &Config{}
	}
	return c.cfg
}

// Close retires every session and service the client started and has not
// closed yet, stops background work and the retries of calls in flight, and
// makes further calls fail with ErrClosed. A session or service whose retire
// failed earlier (its Close, or a service's start context ending) is left
// running, and part of Close's error. A Spawn, SpawnService or
// AttachService still in flight is waited for, but makes no further attempt
// once Close began: it fails with ErrClosed and retires the session it
// started (or may have started), and a failure of that retire is part of
// Close's error too, as is one of the background retire of a start that was
// given up. It is idempotent: a Close whose ctx ended first says what goes
// on in the background, and a later Close waits for it again and returns
// how it ended. Every Close returns by its ctx's deadline.
func (c *Client) Close(ctx context.Context) error {
	if err := c.check(ctx, "Close", false); err != nil {
		return err
	}
	ctx, stop := closeBound(ctx)
	defer stop()
	c.mu.Lock()
	if !c.isClosed() {
		c.end(ErrClosed)
		c.closing = make([]closer, 0, len(c.open))
		for h := range c.open {
			c.closing = append(c.closing, h)
		}
		c.open, c.lineage, c.services, c.received = nil, nil, nil, nil
	}
	closing := c.closing
	c.mu.Unlock()
	select {
	case <-c.closed:
		return c.closeErr
	default:
	}

	// The waits end only after ctx does (a wait's own timer for ctx's
	// deadline could fire first), so that ctx.Err() below is set whenever
	// one was cut short.
	wait, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	defer context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })()
	errs := make([]error, len(closing)+1)
	var wg sync.WaitGroup
	for i, h := range closing {
		wg.Go(func() { errs[i] = h.Close(wait) })
	}
	wg.Go(func() { errs[len(closing)] = c.waitStarts(wait) })
	wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	err := errors.Join(append(errs, c.unretired...)...)
	if ctx.Err() != nil {
		// Some of the waits may have ended with ctx, their work going on
		// in the background: a later Close waits for it again.
		return err
	}
	select {
	case <-c.closed: // a concurrent Close settled it first
		return c.closeErr
	default:
		c.closeErr = err
		c.closing = nil // settled: a later Close returns closeErr
		close(c.closed)
		return err
	}
}

// closeBound returns the context that bounds a Close given ctx: ctx, except
// that a cancellation with a cause matching ErrSessionClosed, or a service's
// lease loss, does not end it. That is ctx deriving from the Context of a
// session that ended, or that the Close itself closes (s.Close(s.Context()),
// or Client.Close given one of its sessions' contexts), which is no reason
// to stop waiting for the retire. ctx's deadline and any other cancellation
// still end it; a ctx already done otherwise is returned as it is.
func closeBound(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx.Err() != nil && !sessionEnded(context.Cause(ctx)) {
		return ctx, func() {}
	}
	if ctx.Done() == nil {
		// It never ends (context.Background, say): nothing to bound.
		return ctx, func() {}
	}
	bound := context.WithoutCancel(ctx)
	stopDeadline := context.CancelFunc(func() {})
	if d, ok := ctx.Deadline(); ok {
		bound, stopDeadline = context.WithDeadline(bound, d)
	}
	bound, cancel := context.WithCancelCause(bound)
	stopAfter := context.AfterFunc(ctx, func() {
		if cause := context.Cause(ctx); !sessionEnded(cause) {
			cancel(cause)
		}
	})
	return bound, func() {
		stopAfter()
		cancel(nil)
		stopDeadline()
	}
}

// sessionEnded reports whether cause is why a session or service handle
// ended (its Context's cause), not a caller giving up.
func sessionEnded(cause error) bool {
	return errors.Is(cause, ErrSessionClosed) || leaseLoss(cause)
}

// check refuses a call that cannot run: on a nil or zero Client (one that
// New did not make), with a nil ctx, or, with open, after Close. op names
// the method for the error.
func (c *Client) check(ctx context.Context, op string, open bool) error {
	if err := c.made(op); err != nil {
		return err
	}
	if ctx == nil {
		return nilContext(op)
	}
	if open && c.isClosed() {
		return ErrClosed
	}
	return nil
}

// made refuses a call on a nil or zero Client.
func (c *Client) made(op string) error {
	if c == nil || c.life == nil {
		return fmt.Errorf("%w: Client.%s on a nil or zero Client; create the client with caracal.New or NewFromConfig (and check its error first)", ErrInvalidRequest, op)
	}
	return nil
}

// nilContext is the error of a method given a nil ctx.
func nilContext(op string) error {
	return fmt.Errorf("%w: %s was given a nil context.Context; pass context.Background() (or the caller's context)", ErrInvalidRequest, op)
}

// track registers h to be closed by Close; it fails once the client is closed.
// A session started under a session whose retire already succeeded (its
// start raced the retire) is not registered: the Coordinator ended it with
// that one, and it ends here as endRetired would have ended it.
func (c *Client) track(h closer) error {
	c.mu.Lock()
	if c.isClosed() {
		c.mu.Unlock()
		return ErrClosed
	}
	s, _ := h.(*Session)
	if s != nil {
		if id := retiredAncestor(s.agent); id != "" {
			c.mu.Unlock()
			s.endUnder(id, nil)
			return nil
		}
	}
	c.open[h] = struct{}{}
	if s != nil {
		c.index(s)
	}
	if sv, ok := h.(*Service); ok {
		c.indexService(sv)
	}
	c.mu.Unlock()
	return nil
}

// beginStart registers a start in flight; it fails once the client is
// closed. The caller calls c.endStart when the start ends.
func (c *Client) beginStart() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed() {
		return ErrClosed
	}
	c.starts++
	c.starting.Add(1)
	return nil
}

// endStart ends a start that beginStart registered.
func (c *Client) endStart() {
	c.mu.Lock()
	c.starts--
	c.mu.Unlock()
	c.starting.Done()
}

// unhanded is the error of a start that ended after Close began: its
// session was retired instead of handed out, or, if retiring it failed
// (retireErr), left running, which Close reports too.
func (c *Client) unhanded(retireErr error) error {
	if retireErr == nil {
		return ErrClosed
	}
	c.keepUnretired(retireErr)
	return fmt.Errorf("%w; %w", ErrClosed, retireErr)
}

// keepUnretired keeps a failed retire of a session nobody holds (err, if
// not nil) for Close to report.
func (c *Client) keepUnretired(err error) {
	if err == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unretired = append(c.unretired, err)
}

// waitStarts waits for the starts in flight until ctx ends. With none in
// flight it succeeds, also when ctx is already done.
func (c *Client) waitStarts(ctx context.Context) error {
	c.mu.Lock()
	idle := c.starts == 0
	c.mu.Unlock()
	if idle || waitGroup(ctx, &c.starting) {
		return nil
	}
	return fmt.Errorf("caracal: a session start in flight goes on in the background (it retires what it starts): %w", context.Cause(ctx))
}

// waitGroup waits for wg until ctx ends, and reports whether wg finished.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// untrack forgets h (called when h closes itself).
func (c *Client) untrack(h closer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.open, h)
	delete(c.received, h)
	if s, ok := h.(*Session); ok {
		c.unindex(s)
	}
	if sv, ok := h.(*Service); ok {
		c.unindexService(sv)
	}
}

// isClosed reports whether Close has been called.
func (c *Client) isClosed() bool {
	select {
	case <-c.life.Done():
		return true
	default:
		return false
	}
}
