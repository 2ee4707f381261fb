package caracal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/caracal-go/caracal/internal/apierr"
	"github.com/caracal-go/caracal/internal/stsclient"
)

// gatewayMinLife is the least life a mandate must have left when it reaches
// the Gateway, which refuses one that expires sooner (PROTOCOL §8.2).
const gatewayMinLife = 35 * time.Second

// Prefetch limits.
const (
	// prefetchMinLife is the least life a pooled mandate must have when it
	// is taken: gatewayMinLife, and a margin for the time to reach the
	// Gateway.
	prefetchMinLife = gatewayMinLife + 10*time.Second
	// prefetchIdle drops a pool nobody took from for this long, so that an
	// abandoned key stops holding a worker and unspent mandates.
	prefetchIdle = time.Minute
	// maxPrefetchDepth bounds WithPrefetch's depth: each pooled mandate
	// spends the STS mint budget whether or not it is taken.
	maxPrefetchDepth = 16
	// prefetchMaxPools bounds the pools (and so the refill workers) of one
	// transport; past it, requests mint on the request path.
	prefetchMaxPools = 256
	// prefetchWaitInflight bounds how long a request with an empty pool
	// waits for the refill in flight before minting itself: a mint takes a
	// few milliseconds, so a refill that is not done by then is stuck.
	prefetchWaitInflight = 50 * time.Millisecond
	// prefetchMintTimeout bounds one background mint.
	prefetchMintTimeout = 30 * time.Second
	// prefetchBackoffMin and prefetchBackoffMax bound the wait after a
	// failed background mint.
	prefetchBackoffMin = time.Second
	prefetchBackoffMax = 30 * time.Second
)

// poolKey identifies the mandates that are interchangeable.
type poolKey struct {
	session, delegation, resource, scopes string
}

// gateKey is the approval-gating key of k's mandates: gating follows the
// scopes' risk tiers, not the session.
func (k poolKey) gateKey() gateKey { return gateKey{resource: k.resource, scopes: k.scopes} }

// prefetcher keeps the mandate pools of one transport. It is registered with
// the client, whose Close stops and waits for its workers.
type prefetcher struct {
	mint  func(context.Context, stsclient.MintRequest) (stsclient.Token, error)
	depth int

	// ctx scopes background minting; cancelled by closeNow, which the
	// client's Close reaches through Close.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	pools   map[poolKey]*pool
	gates   *gateSet      // shared by the client's transports
	onGate  func(gateKey) // the client's gate: drops its other transports' pools
	workers int           // running workers
	onIdle  func()        // set by abandon: called when the last worker exits
}

// pool is one key's mandates, refilled by one worker goroutine.
type pool struct {
	key      poolKey
	req      stsclient.MintRequest
	tokens   []stsclient.Token // oldest first; guarded by prefetcher.mu
	lastTake time.Time         // guarded by prefetcher.mu
	wake     chan struct{}     // capacity 1: "a mandate was taken"
	inflight chan struct{}     // closed when the running refill ends; guarded by prefetcher.mu
	session  <-chan struct{}   // closed when the session closes; may be nil
	// life is closed when the session's Context ends, also when a parent
	// session this process holds ends (the Coordinator ends the child
	// with it); may be nil.
	life <-chan struct{}
}

func newPrefetcher(c *Client, mint func(context.Context, stsclient.MintRequest) (stsclient.Token, error), depth int) *prefetcher {
	p := newPrefetcherFunc(mint, depth)
	p.gates = &c.gates
	p.onGate = c.gate
	if err := c.track(p); err != nil {
		// The client is closed: no background work may start.
		p.closeNow()
	}
	return p
}

func newPrefetcherFunc(mint func(context.Context, stsclient.MintRequest) (stsclient.Token, error), depth int) *prefetcher {
	ctx, cancel := context.WithCancel(context.Background())
	return &prefetcher{
		mint:   mint,
		depth:  depth,
		ctx:    ctx,
		cancel: cancel,
		pools:  make(map[poolKey]*pool),
		gates:  new(gateSet),
	}
}

// take returns a pooled mandate for r, or mints one on the request path.
func (p *prefetcher) take(ctx context.Context, a *Agent, r stsclient.MintRequest) (stsclient.Token, error) {
	key := poolKey{session: r.AgentSessionID, delegation: r.DelegationEdgeID, resource: r.Resource, scopes: strings.Join(r.Scopes, " ")}
	if ctx.Err() != nil {
		// The request will not be sent: it must not spend a pooled mandate,
		// which the worker would replace with another mint.
		return stsclient.Token{}, context.Cause(ctx)
	}

	tok, ok, inflight := p.pop(key)
	if ok {
		return tok, nil
	}
	if inflight != nil {
		// The refill already under way is closer to done than a new mint
		// would be; wait for it a little.
		t := time.NewTimer(prefetchWaitInflight)
		select {
		case <-inflight:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		if ctx.Err() != nil {
			return stsclient.Token{}, context.Cause(ctx)
		}
		if tok, ok, _ = p.pop(key); ok {
			return tok, nil
		}
	}

	tok, err := p.mint(ctx, r)
	if err != nil {
		if isApproval(err) {
			p.gate(key.gateKey())
		}
		return stsclient.Token{}, err
	}
	if poolable(tok) {
		// A mandate minted for the same key now is the best guess of what a
		// background mint would get: one too short-lived to pool would only
		// start a worker whose single mint is wasted, once per request.
		p.start(key, r, a)
	}
	return tok, nil
}

// poolable reports whether tok lives long enough to be worth pooling: long
// enough to wait in the pool and still have prefetchMinLife when taken.
func poolable(tok stsclient.Token) bool {
	return time.Until(tok.ExpiresAt) >= 2*prefetchMinLife
}

// pop takes the oldest usable mandate of key's pool, discarding those too
// close to expiry, and wakes the pool's worker to refill. Without one, it
// returns the channel of the refill in flight, if any.
func (p *prefetcher) pop(key poolKey) (tok stsclient.Token, ok bool, inflight <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pl := p.pools[key]
	if pl == nil {
		return stsclient.Token{}, false, nil
	}
	now := time.Now()
	pl.lastTake = now
	defer pl.signal()
	for len(pl.tokens) > 0 {
		tok = pl.tokens[0]
		pl.tokens[0] = stsclient.Token{}
		pl.tokens = pl.tokens[1:]
		if tok.ExpiresAt.Sub(now) >= prefetchMinLife {
			return tok, true, nil
		}
	}
	return stsclient.Token{}, false, pl.inflight
}

// signal wakes the pool's worker without blocking.
func (pl *pool) signal() {
	select {
	case pl.wake <- struct{}{}:
	default:
	}
}

// gate records that gk needs approvals and drops its pools, and those of
// the client's other prefetching transports.
func (p *prefetcher) gate(gk gateKey) {
	p.gates.add(gk)
	p.dropGated(gk)
	if p.onGate != nil {
		p.onGate(gk)
	}
}

// start creates key's pool and its worker after a successful mint on the
// request path, unless one exists, the key is gated, the session is closed,
// or a bound is reached.
func (p *prefetcher) start(key poolKey, r stsclient.MintRequest, a *Agent) {
	var life <-chan struct{}
	if a.life != nil {
		life = a.life.Done()
	}
	if isDone(a.done) || isDone(life) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.pools[key] != nil || len(p.pools) >= prefetchMaxPools || p.gates.has(key.gateKey()) {
		return
	}
	r.Scopes = append([]string(nil), r.Scopes...)
	r.ApprovalID = ""
	pl := &pool{key: key, req: r, lastTake: time.Now(), wake: make(chan struct{}, 1), session: a.done, life: life}
	p.pools[key] = pl
	p.workers++
	p.wg.Add(1)
	go p.worker(pl)
}

func isDone(ch <-chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// worker keeps pl filled to depth until pl is dropped, its session closes
// or its Context ends, it idles, or the prefetcher stops. It mints one mandate at a time.
func (p *prefetcher) worker(pl *pool) {
	defer p.workerDone()
	idle := time.NewTimer(prefetchIdle)
	defer idle.Stop()
	backoff := time.Duration(0)
	for {
		live, need := p.state(pl)
		if !live {
			return
		}
		if need {
			if p.gates.has(pl.key.gateKey()) {
				// Another transport of the client met a hold for these scopes.
				p.drop(pl)
				return
			}
			tok, err := p.mintOne(pl)
			kept := err == nil && p.put(pl, tok)
			p.settle(pl)
			switch {
			case err == nil:
				backoff = 0
				if !kept {
					return
				}
				continue
			case isApproval(err):
				p.gate(pl.key.gateKey())
				return
			case p.ctx.Err() != nil:
				return
			case !temporary(err):
				// A refusal (an edge revoked, the mint budget spent) does
				// not pass by retrying in the background. The request
				// path mints again and re-creates the pool after its next
				// success.
				p.drop(pl)
				return
			case p.dropIfIdle(pl):
				// Nobody takes from the pool: not worth retrying for.
				return
			default:
				backoff = min(max(2*backoff, prefetchBackoffMin), prefetchBackoffMax)
				if !p.sleep(pl, backoff) {
					return
				}
				continue
			}
		}
		select {
		case <-pl.wake:
		case <-idle.C:
			if p.dropIfIdle(pl) {
				return
			}
			idle.Reset(prefetchIdle)
		case <-pl.session:
			p.drop(pl)
			return
		case <-pl.life:
			p.drop(pl)
			return
		case <-p.ctx.Done():
			return
		}
	}
}

// dropIfIdle drops pl if nobody took from it for prefetchIdle.
func (p *prefetcher) dropIfIdle(pl *pool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(pl.lastTake) < prefetchIdle {
		return false
	}
	p.dropLocked(pl)
	return true
}

// temporary reports whether a failed background mint may succeed if
// retried: a network failure, a timeout, or an STS answer that says so.
func temporary(err error) bool {
	var e *apierr.Error
	return !errors.As(err, &e) || e.Temporary()
}

// state reports whether pl is still in use, and whether it is below depth.
func (p *prefetcher) state(pl *pool) (live, need bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	live = !p.closed && p.pools[pl.key] == pl
	return live, live && len(pl.tokens) < p.depth && !isDone(pl.session) && !isDone(pl.life)
}

// mintOne mints for pl; requests waiting on pl.inflight are released when
// the result is in the pool (put) or the attempt failed.
func (p *prefetcher) mintOne(pl *pool) (stsclient.Token, error) {
	ch := make(chan struct{})
	p.mu.Lock()
	pl.inflight = ch
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(p.ctx, prefetchMintTimeout)
	defer cancel()
	return p.mint(ctx, pl.req)
}

// settle ends pl's refill in flight.
func (p *prefetcher) settle(pl *pool) {
	p.mu.Lock()
	ch := pl.inflight
	pl.inflight = nil
	p.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

// put adds tok to pl; false means the worker should stop (pl was dropped,
// or the edge no longer yields mandates that live long enough to pool).
func (p *prefetcher) put(pl *pool, tok stsclient.Token) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.pools[pl.key] != pl {
		return false
	}
	if !poolable(tok) {
		// The edge is about to expire: pooled mandates would be discarded
		// before use. Stop prefetching this key.
		p.dropLocked(pl)
		return false
	}
	pl.tokens = append(pl.tokens, tok)
	return true
}

// sleep waits d unless pl's life ends first.
func (p *prefetcher) sleep(pl *pool, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-pl.session:
		p.drop(pl)
		return false
	case <-pl.life:
		p.drop(pl)
		return false
	case <-p.ctx.Done():
		return false
	}
}

func (p *prefetcher) drop(pl *pool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropLocked(pl)
}

// dropLocked forgets pl and wakes its worker so that it exits.
func (p *prefetcher) dropLocked(pl *pool) {
	if p.pools[pl.key] == pl {
		delete(p.pools, pl.key)
	}
	pl.tokens = nil
	pl.signal()
}

// workerDone ends a worker: the last one out after abandon runs onIdle.
func (p *prefetcher) workerDone() {
	p.mu.Lock()
	p.workers--
	var f func()
	if p.workers == 0 {
		f, p.onIdle = p.onIdle, nil
	}
	p.mu.Unlock()
	if f != nil {
		f()
	}
	p.wg.Done()
}

// abandon stops p for a transport that was garbage-collected: it drops
// every pool and calls f once no worker runs, at once if none does. It
// touches no channel, because it runs on the runtime's cleanup goroutine,
// outside the testing/synctest bubble the workers may run in (where closing
// one of their channels is fatal): the workers see it when they next wake,
// at the latest after prefetchIdle, or at the client's Close.
func (p *prefetcher) abandon(f func()) {
	p.mu.Lock()
	p.closeLocked()
	if p.workers > 0 {
		p.onIdle, f = f, nil
	}
	p.mu.Unlock()
	if f != nil {
		f()
	}
}

// closeNow stops background minting and drops every pool without waiting.
func (p *prefetcher) closeNow() {
	p.mu.Lock()
	p.closeLocked()
	p.mu.Unlock()
	p.cancel()
}

// closeLocked marks p closed and forgets every pool and its mandates. It
// touches no channel (see abandon): a worker finds its pool gone when it
// next looks.
func (p *prefetcher) closeLocked() {
	p.closed = true
	for _, pl := range p.pools {
		pl.tokens = nil
	}
	clear(p.pools)
}

// Close stops the workers and waits for them until ctx ends. With no worker
// running it succeeds, also when ctx is already done. The client calls it
// from Close.
func (p *prefetcher) Close(ctx context.Context) error {
	p.closeNow()
	p.mu.Lock()
	idle := p.workers == 0
	p.mu.Unlock()
	if idle || waitGroup(ctx, &p.wg) {
		return nil
	}
	return fmt.Errorf("caracal: a mandate prefetch worker is still stopping: %w", context.Cause(ctx))
}

// pooled reports the number of mandates pooled for key (tests).
func (p *prefetcher) pooled(key poolKey) (n int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pl := p.pools[key]
	if pl == nil {
		return 0, false
	}
	return len(pl.tokens), true
}
