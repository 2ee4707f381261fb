package caracal

// This file holds the approval-gated scopes a client's transports met, which
// no transport of the client prefetches.

import "sync"

// prefetchMaxGated bounds the remembered approval-gated keys; past it no new
// pool is created, which is the safe side.
const prefetchMaxGated = 1024

// gateKey identifies an approval-gated request: gating follows the scopes'
// risk tiers, not the session.
type gateKey struct {
	resource, scopes string
}

// gateSet remembers the approval-gated (resource, scopes) pairs that one
// client has met, so that none of the client's transports prefetches them:
// a transport that did not see the hold itself would otherwise start a pool
// after the approved retry, and its background mint would raise a new hold
// nobody waits for. A full set counts every key as gated, the safe side.
type gateSet struct {
	mu sync.Mutex
	m  map[gateKey]struct{}
}

func (g *gateSet) add(k gateKey) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = make(map[gateKey]struct{})
	}
	if len(g.m) < prefetchMaxGated {
		g.m[k] = struct{}{}
	}
}

func (g *gateSet) has(k gateKey) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.m[k]
	return ok || len(g.m) >= prefetchMaxGated
}

// gate records that gk needs approvals and drops the pools for it of every
// prefetching transport of c: their mandates were minted before the scopes
// were held, and the next request for them must raise its own hold.
func (c *Client) gate(gk gateKey) {
	c.gates.add(gk)
	for _, p := range c.prefetchers() {
		p.dropGated(gk)
	}
}

// dropGated drops p's pools for gk.
func (p *prefetcher) dropGated(gk gateKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, pl := range p.pools {
		if k.gateKey() == gk {
			p.dropLocked(pl)
		}
	}
}
