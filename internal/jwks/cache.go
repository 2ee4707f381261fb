package jwks

import (
	"crypto/ecdsa"
	"sync"
	"time"
)

// DefaultCacheSize is how many verified tokens a Verifier remembers.
const DefaultCacheSize = 1024

// cacheScan bounds the entries an insert into a full cache looks at.
const cacheScan = 16

// verified is a token whose signature checked out, with what a later
// presentation of the same bytes needs to skip the signature check.
type verified struct {
	claims *Claims
	kid    string
	key    *ecdsa.PublicKey
	// until is when the token stops passing the expiry rule.
	until time.Time
}

// tokenCache remembers verified tokens by their exact bytes, so that a
// token presented again (a session token sent with every call, a retried
// request) costs a map lookup instead of a P-256 verification. Only tokens
// that passed every check are stored; a hit is still checked against the
// current key set and the clock. Safe for concurrent use.
type tokenCache struct {
	max int
	mu  sync.RWMutex
	m   map[string]verified
}

func newTokenCache(max int) *tokenCache {
	if max <= 0 {
		return nil
	}
	return &tokenCache{max: max, m: make(map[string]verified)}
}

// get returns the entry of token, if any.
func (c *tokenCache) get(token string) (verified, bool) {
	c.mu.RLock()
	e, ok := c.m[token]
	c.mu.RUnlock()
	return e, ok
}

// put stores token. A full cache first drops the expired entries among a
// few it looks at and, if none was, one of them: the map's random iteration
// order makes that a random eviction, at a bounded cost per insert.
func (c *tokenCache) put(token string, e verified, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[token]; !ok && len(c.m) >= c.max {
		seen, victim := 0, ""
		for k, old := range c.m {
			if now.After(old.until) {
				delete(c.m, k)
			} else if victim == "" {
				victim = k
			}
			if seen++; seen == cacheScan {
				break
			}
		}
		if len(c.m) >= c.max {
			delete(c.m, victim)
		}
	}
	c.m[token] = e
}

// drop forgets token.
func (c *tokenCache) drop(token string) {
	c.mu.Lock()
	delete(c.m, token)
	c.mu.Unlock()
}
