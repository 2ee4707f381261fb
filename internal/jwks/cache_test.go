package jwks

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cached reports whether token is in f's verifier cache.
func (f *fixture) cached(token string) bool {
	_, ok := f.v.cache.get(token)
	return ok
}

func TestCacheAnswersRepeatedToken(t *testing.T) {
	f := newFixture(t, Expect{Scopes: []string{"tickets:read"}})
	ctx := context.Background()
	tok := f.s.sign(t, validClaims(f.clock.Now()))
	first, err := f.v.Verify(ctx, tok)
	require.NoError(t, err)
	require.True(t, f.cached(tok))

	again, err := f.v.Verify(ctx, tok)
	require.NoError(t, err)
	assert.Equal(t, first, again)

	// The same claims under another signature are another token.
	other := f.s.sign(t, validClaims(f.clock.Now()))
	_, err = f.v.Verify(ctx, other)
	require.NoError(t, err)
	assert.True(t, f.cached(other))
}

func TestCacheNeverStoresRefusals(t *testing.T) {
	f := newFixture(t, Expect{Scopes: []string{"tickets:delete"}})
	ctx := context.Background()
	tok := f.s.sign(t, validClaims(f.clock.Now()))
	for range 2 {
		_, err := f.v.Verify(ctx, tok)
		var ve *Error
		require.ErrorAs(t, err, &ve)
		assert.Equal(t, CodeInsufficientScope, ve.Code)
	}
	assert.False(t, f.cached(tok))

	// A tampered signature of a cached token is checked from scratch.
	good := validClaims(f.clock.Now())
	good["scope"] = "tickets:delete"
	tok = f.s.sign(t, good)
	_, err := f.v.Verify(ctx, tok)
	require.NoError(t, err)
	tampered := tok[:len(tok)-2] + flip(tok[len(tok)-2]) + tok[len(tok)-1:]
	_, err = f.v.Verify(ctx, tampered)
	assert.ErrorContains(t, err, "bad signature or algorithm")
	assert.False(t, f.cached(tampered))
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func TestCacheHitStillExpires(t *testing.T) {
	f := newFixture(t, Expect{})
	ctx := context.Background()
	tok := f.s.sign(t, validClaims(f.clock.Now()))
	_, err := f.v.Verify(ctx, tok)
	require.NoError(t, err)

	f.clock.Add(15*time.Minute + Leeway) // exp + leeway: still valid
	_, err = f.v.Verify(ctx, tok)
	require.NoError(t, err)
	f.clock.Add(time.Second)
	_, err = f.v.Verify(ctx, tok)
	assert.ErrorContains(t, err, "token expired")
	assert.False(t, f.cached(tok))
}

func TestCacheHitNeedsTheSameKey(t *testing.T) {
	f := newFixture(t, Expect{})
	ctx := context.Background()
	tok := f.s.sign(t, validClaims(f.clock.Now()))
	_, err := f.v.Verify(ctx, tok)
	require.NoError(t, err)

	// A refetch that brings the same key keeps the entry.
	f.clock.Add(DefaultMaxAge)
	_, err = f.v.Verify(ctx, tok)
	require.NoError(t, err)
	assert.Equal(t, int32(2), f.srv.fetches.Load())
	assert.True(t, f.cached(tok))

	// The key id now names another key: the token no longer verifies.
	f.srv.set(false, newSigner(t, f.s.kid))
	f.clock.Add(DefaultMaxAge)
	_, err = f.v.Verify(ctx, tok)
	assert.ErrorContains(t, err, "bad signature or algorithm")
	assert.False(t, f.cached(tok))

}

func TestCacheRemovedKey(t *testing.T) {
	f := newFixture(t, Expect{})
	ctx := context.Background()
	gone := newSigner(t, "kid-gone")
	f.srv.set(false, f.s, gone)
	tok := gone.sign(t, validClaims(f.clock.Now()))
	_, err := f.v.Verify(ctx, tok)
	require.NoError(t, err)
	require.True(t, f.cached(tok))

	f.srv.set(false, f.s)
	f.clock.Add(DefaultMaxAge)
	_, err = f.v.Verify(ctx, tok)
	assert.True(t, errors.Is(err, ErrUnknownKey), "%v", err)
	assert.False(t, f.cached(tok))
}

func TestCacheIsBounded(t *testing.T) {
	f := newFixture(t, Expect{CacheSize: 4})
	ctx := context.Background()
	var last string
	for i := range 20 {
		c := validClaims(f.clock.Now())
		c["jti"] = strings.Repeat("j", i+1)
		last = f.s.sign(t, c)
		_, err := f.v.Verify(ctx, last)
		require.NoError(t, err)
		assert.LessOrEqual(t, len(f.v.cache.m), 4)
	}
	assert.True(t, f.cached(last), "the newest token is kept")

	// Expired entries go first.
	f.clock.Add(time.Hour)
	fresh := f.s.sign(t, validClaims(f.clock.Now()))
	_, err := f.v.Verify(ctx, fresh)
	require.NoError(t, err)
	assert.Len(t, f.v.cache.m, 1)
}

func TestCacheOff(t *testing.T) {
	f := newFixture(t, Expect{CacheSize: -1})
	assert.Nil(t, f.v.cache)
	tok := f.s.sign(t, validClaims(f.clock.Now()))
	for range 2 {
		_, err := f.v.Verify(context.Background(), tok)
		require.NoError(t, err)
	}
}
