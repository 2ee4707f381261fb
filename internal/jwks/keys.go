// Package jwks verifies Caracal STS tokens: an ES256 key cache over one zone's
// JWKS document, and the claim checks a resource server applies to a
// resource token (PROTOCOL §3.5, §3.9, §7.5).
package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/caracal-go/caracal/internal/apierr"
	"github.com/caracal-go/caracal/internal/wire"
)

// Defaults for KeysConfig.
const (
	// DefaultMaxAge is how long a fetched key set is trusted without a
	// refetch; the STS serves it with max-age=300.
	DefaultMaxAge = 5 * time.Minute
	// DefaultCooldown is the shortest interval between two fetches caused by
	// an unknown key id, so that a stream of tokens with invented key ids
	// cannot turn the verifier into a load generator against the STS, and
	// between a failed fetch and the next one. The refetch of an aged set
	// starts none, so that a rotation right after it is found at once.
	DefaultCooldown = 30 * time.Second
	// DefaultFetchTimeout bounds one JWKS fetch.
	DefaultFetchTimeout = 5 * time.Second
	// MaxBody caps the JWKS document.
	MaxBody = 256 << 10
	// MaxKeys caps the number of keys kept from one document; the STS serves
	// the current key and the previous one.
	MaxKeys = 16
	// staleGrace is how long past DefaultMaxAge a key set is still used when
	// a refetch fails, so that a short STS outage does not stop resource
	// servers; a key rotated out stays valid at the STS for 24 h anyway.
	staleGrace = time.Hour
)

// ErrUnknownKey is returned when the token's key id is not in the zone's key
// set, even after a refetch (or while the refetch cooldown runs).
var ErrUnknownKey = errors.New("signing key not found")

// ErrKeysUnavailable wraps a failure to fetch or read the key set: a
// problem of the deployment (the JWKS URL, the network, the STS), not of the
// token being verified.
var ErrKeysUnavailable = errors.New("signing keys unavailable")

// KeysConfig configures a Keys cache.
type KeysConfig struct {
	// URL is the complete JWKS URL, zone_id query included.
	URL        string
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxAge, Cooldown and FetchTimeout default to the package defaults.
	MaxAge, Cooldown, FetchTimeout time.Duration
}

// Keys caches one zone's signing keys by key id. It is safe for concurrent
// use; a warm lookup takes no lock and writes nothing, so that the requests
// a server verifies at once do not contend on it.
type Keys struct {
	url      string
	shown    string // url as errors show it: user part and query values masked
	hc       *http.Client
	now      func() time.Time
	maxAge   time.Duration
	cooldown time.Duration
	timeout  time.Duration

	// set is the key set of the last successful fetch; nil before the
	// first. A fetch replaces it whole: a set is never changed.
	set atomic.Pointer[keySet]

	// fetching serialises fetches (a lock a waiter can give up on when its
	// request ends); lastTry, lastErr and lastUnknown are guarded by it.
	fetching    chan struct{}
	lastTry     time.Time
	lastErr     error     // outcome of the fetch at lastTry
	lastUnknown time.Time // the last fetch caused by an unknown key id

	// failing mirrors lastErr != nil for readers that do not hold fetching.
	failing atomic.Bool
}

// keySet is one fetched key set and when it was fetched.
type keySet struct {
	keys    map[string]*ecdsa.PublicKey
	fetched time.Time
}

// NewKeys returns an empty cache; the first lookup fetches.
func NewKeys(cfg KeysConfig) *Keys {
	k := &Keys{
		url:      cfg.URL,
		shown:    apierr.ShowURL(cfg.URL),
		hc:       cfg.HTTPClient,
		now:      cfg.Now,
		maxAge:   cfg.MaxAge,
		cooldown: cfg.Cooldown,
		timeout:  cfg.FetchTimeout,
		fetching: make(chan struct{}, 1),
	}
	if k.hc == nil {
		k.hc = http.DefaultClient
	}
	if k.now == nil {
		k.now = time.Now
	}
	if k.maxAge <= 0 {
		k.maxAge = DefaultMaxAge
	}
	if k.cooldown <= 0 {
		k.cooldown = DefaultCooldown
	}
	if k.timeout <= 0 {
		k.timeout = DefaultFetchTimeout
	}
	return k
}

// Key returns the public key with id kid. A fresh cache answers from memory;
// a stale one refetches first, and an unknown kid too, at most once per
// cooldown.
// A key that aged but is inside the stale grace is returned without waiting
// while another caller refetches, and without refetching again when the last
// attempt failed within the cooldown: an STS outage then costs one fetch per
// cooldown, not one per request queued behind the fetch timeout.
func (k *Keys) Key(ctx context.Context, kid string) (*ecdsa.PublicKey, error) {
	now := k.now()
	key, ok, fetched := k.lookup(kid)
	if ok && now.Sub(fetched) < k.maxAge {
		return key, nil
	}
	if ok && now.Sub(fetched) < k.maxAge+staleGrace {
		select {
		case k.fetching <- struct{}{}:
		default:
			return key, nil // a refetch is in flight
		}
	} else {
		// Wait for the fetch in flight, unless the request ends first.
		select {
		case k.fetching <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("jwks: gave up waiting for the key set: %w", context.Cause(ctx))
		}
	}
	defer func() { <-k.fetching }()
	return k.slow(ctx, kid)
}

// Failing reports whether the last attempt to fetch the key set failed: an
// outage of the key source lasts until a fetch succeeds again, even while
// aged keys still verify tokens.
func (k *Keys) Failing() bool { return k.failing.Load() }

// Held reports whether a key set is held that still verifies tokens under
// its keys: one fetched within the maximum age plus the stale grace.
func (k *Keys) Held() bool {
	s := k.set.Load()
	return s != nil && k.now().Sub(s.fetched) < k.maxAge+staleGrace
}

// lookup reads kid and the time of the last successful fetch.
func (k *Keys) lookup(kid string) (*ecdsa.PublicKey, bool, time.Time) {
	s := k.set.Load()
	if s == nil {
		return nil, false, time.Time{}
	}
	key, ok := s.keys[kid]
	return key, ok, s.fetched
}

// slow runs holding fetching.
func (k *Keys) slow(ctx context.Context, kid string) (*ecdsa.PublicKey, error) {
	// Another caller may have fetched while this one waited for the lock.
	now := k.now()
	key, ok, fetched := k.lookup(kid)
	if ok && now.Sub(fetched) < k.maxAge {
		return key, nil
	}
	// A failed attempt starts a cooldown in which nothing refetches; a
	// fetch for an unknown kid, one in which no other unknown kid does.
	failed := k.lastErr != nil && now.Sub(k.lastTry) < k.cooldown
	if failed || !ok && !k.lastUnknown.IsZero() && now.Sub(k.lastUnknown) < k.cooldown {
		switch {
		case ok && now.Sub(fetched) < k.maxAge+staleGrace:
			return key, nil
		case failed:
			return nil, k.lastErr
		}
		return nil, ErrUnknownKey
	}
	k.lastTry = now
	if !ok {
		k.lastUnknown = now
	}
	err := k.fetch(ctx)
	if err != nil {
		err = fmt.Errorf("%w from %s: %w", ErrKeysUnavailable, k.shown, err)
	}
	k.lastErr = err
	k.failing.Store(err != nil)
	key, ok, fetched = k.lookup(kid)
	switch {
	case ok && (err == nil || k.now().Sub(fetched) < k.maxAge+staleGrace):
		return key, nil
	case err != nil:
		return nil, err
	default:
		return nil, ErrUnknownKey
	}
}

// fetch replaces the key set. It is detached from the caller's cancellation
// (a hostile client that hangs up must not spend the cooldown) and bounded by
// the fetch timeout.
func (k *Keys) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.hc.Do(req)
	if err != nil {
		return fmt.Errorf("jwks: fetch: %w", apierr.HideURLUser(err))
	}
	defer resp.Body.Close()
	body, err := apierr.ReadBody(resp, MaxBody+1)
	if err != nil {
		return fmt.Errorf("jwks: fetch: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		// The STS's refusal: its status, code and text.
		e, _ := apierr.FromResponse("sts", http.MethodGet, req.URL.Path, resp, body)
		return fmt.Errorf("jwks: fetch: %w", e)
	}
	if len(body) > MaxBody {
		return errors.New("jwks: document larger than 256 KiB")
	}
	keys, err := Parse(body)
	if err != nil {
		return err
	}
	k.set.Store(&keySet{keys: keys, fetched: k.now()})
	return nil
}

// Parse decodes a JWKS document and keeps its ES256 P-256 signing keys (at
// most MaxKeys). Keys of other types are skipped, not errors: a JWKS may
// legitimately carry keys this verifier does not use.
func Parse(doc []byte) (map[string]*ecdsa.PublicKey, error) {
	var set wire.JWKS
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, fmt.Errorf("jwks: malformed document: %w", err)
	}
	keys := make(map[string]*ecdsa.PublicKey, len(set.Keys))
	for _, j := range set.Keys {
		if len(keys) == MaxKeys {
			break
		}
		if j.Kid == "" || j.Kty != "EC" || j.Crv != "P-256" || (j.Alg != "" && j.Alg != "ES256") || (j.Use != "" && j.Use != "sig") {
			continue
		}
		pub, err := ecKey(j.X, j.Y)
		if err != nil {
			continue
		}
		keys[j.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, errors.New("jwks: no ES256 P-256 signing key in the document")
	}
	return keys, nil
}

// ecKey decodes a P-256 point, refusing points off the curve.
func ecKey(x, y string) (*ecdsa.PublicKey, error) {
	xb, err := base64.RawURLEncoding.DecodeString(x)
	if err != nil || len(xb) != 32 {
		return nil, errors.New("bad x")
	}
	yb, err := base64.RawURLEncoding.DecodeString(y)
	if err != nil || len(yb) != 32 {
		return nil, errors.New("bad y")
	}
	// ParseUncompressedPublicKey refuses points off the curve.
	raw := append(append([]byte{4}, xb...), yb...)
	return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
}
