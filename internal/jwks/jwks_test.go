package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/wire"
)

const (
	testIssuer   = "http://sts.test"
	testResource = "resource://tickets"
	testZone     = "zone-test"
)

type signer struct {
	kid string
	key *ecdsa.PrivateKey
}

func newSigner(t testing.TB, kid string) signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return signer{kid: kid, key: k}
}

func (s signer) jwk() wire.JWK {
	b, err := s.key.PublicKey.Bytes()
	if err != nil {
		panic(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return wire.JWK{Kty: "EC", Crv: "P-256", Use: "sig", Kid: s.kid, Alg: "ES256", X: enc(b[1:33]), Y: enc(b[33:])}
}

func (s signer) sign(t testing.TB, claims jwt.MapClaims) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = s.kid
	out, err := tok.SignedString(s.key)
	require.NoError(t, err)
	return out
}

// validClaims is a resource token as the Gateway's STS exchange issues it.
func validClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": testIssuer, "sub": "app-test", "aud": []string{testResource},
		"exp": now.Add(15 * time.Minute).Unix(), "iat": now.Unix(), "jti": "0198-jti",
		"zone_id": testZone, "client_id": "app-test", "scope": "tickets:read tickets:write",
		"sid": "rec-1", "root_sid": "rec-0", "use": "resource", "sub_type": "application",
		"target": []string{testResource}, "agent_session_id": "sess-1", "delegation_edge_id": "edge-1",
		"delegation_path": []string{"edge-0", "edge-1"}, "hop_count": 2,
	}
}

// jwksServer serves the given signers' keys and counts fetches.
type jwksServer struct {
	mu      sync.Mutex
	signers []signer
	fail    bool
	fetches atomic.Int32
}

func (j *jwksServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	j.fetches.Add(1)
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.fail {
		http.Error(w, `{"error":"sts_unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	var set wire.JWKS
	for _, s := range j.signers {
		set.Keys = append(set.Keys, s.jwk())
	}
	_ = json.NewEncoder(w).Encode(set)
}

func (j *jwksServer) set(fail bool, s ...signer) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.fail, j.signers = fail, s
}

// handlerClient is an http.Client that calls h in memory.
func handlerClient(h http.Handler) *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Result(), nil
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// fakeClock is a settable clock (no goroutine waits on it).
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	srv   *jwksServer
	clock *fakeClock
	keys  *Keys
	v     *Verifier
	s     signer
}

func newFixture(t testing.TB, exp Expect) *fixture {
	f := &fixture{srv: &jwksServer{}, clock: &fakeClock{t: time.Now().Truncate(time.Second)}, s: newSigner(t, "kid-1")}
	f.srv.set(false, f.s)
	f.keys = NewKeys(KeysConfig{URL: testIssuer + "/.well-known/jwks.json?zone_id=" + testZone, HTTPClient: handlerClient(f.srv), Now: f.clock.Now})
	if exp.Issuer == "" {
		exp.Issuer = testIssuer
	}
	if exp.Audience == "" {
		exp.Audience = testResource
	}
	if exp.Zone == "" {
		exp.Zone = testZone
	}
	exp.Now = f.clock.Now
	v, err := NewVerifier(f.keys, exp)
	require.NoError(t, err)
	f.v = v
	return f
}

func TestVerifyAcceptsResourceToken(t *testing.T) {
	f := newFixture(t, Expect{Scopes: []string{"tickets:read"}})
	c, err := f.v.Verify(context.Background(), f.s.sign(t, validClaims(f.clock.Now())))
	require.NoError(t, err)
	assert.Equal(t, "sess-1", c.AgentSessionID)
	assert.Equal(t, "edge-1", c.DelegationEdgeID)
	assert.Equal(t, []string{"edge-0", "edge-1"}, c.DelegationPath)
	assert.Equal(t, 2, c.HopCount)
	assert.Equal(t, "app-test", c.ClientID)
	assert.Equal(t, int32(1), f.srv.fetches.Load())

	// Warm cache: no further fetch.
	for range 5 {
		_, err = f.v.Verify(context.Background(), f.s.sign(t, validClaims(f.clock.Now())))
		require.NoError(t, err)
	}
	assert.Equal(t, int32(1), f.srv.fetches.Load())
}

func TestVerifyRefusals(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	other := newSigner(t, "kid-other")
	tests := []struct {
		name   string
		mutate func(jwt.MapClaims)
		token  func(t *testing.T, f *fixture, c jwt.MapClaims) string
		code   string
		desc   string
	}{
		{name: "expired beyond leeway", mutate: func(c jwt.MapClaims) { c["exp"] = now.Add(-61 * time.Second).Unix() }, desc: "token expired"},
		{name: "missing exp", mutate: func(c jwt.MapClaims) { delete(c, "exp") }, desc: "required claim missing"},
		{name: "issued in the future beyond leeway", mutate: func(c jwt.MapClaims) { c["iat"] = now.Add(61 * time.Second).Unix() }, desc: "token issued in the future"},
		{name: "wrong zone", mutate: func(c jwt.MapClaims) { c["zone_id"] = "zone-other" }, code: CodeInvalidZone},
		{name: "wrong audience", mutate: func(c jwt.MapClaims) { c["aud"] = []string{"resource://other"} }, desc: "wrong audience"},
		{name: "wrong issuer", mutate: func(c jwt.MapClaims) { c["iss"] = "http://evil" }, desc: "wrong issuer"},
		{name: "use gateway", mutate: func(c jwt.MapClaims) { c["use"] = "gateway" }, desc: "token class gateway is not accepted here"},
		{name: "use session by default", mutate: func(c jwt.MapClaims) { c["use"] = "session" }, desc: "token class session is not accepted here"},
		{name: "missing jti", mutate: func(c jwt.MapClaims) { delete(c, "jti") }, desc: "required claim missing"},
		{name: "missing root_sid", mutate: func(c jwt.MapClaims) { delete(c, "root_sid") }, desc: "required claim missing"},
		{name: "bad sub_type", mutate: func(c jwt.MapClaims) { c["sub_type"] = "robot" }, desc: "unknown subject type"},
		{name: "hop count", mutate: func(c jwt.MapClaims) { c["hop_count"] = 11 }, code: CodeHopCountExceeded},
		{name: "negative hop count", mutate: func(c jwt.MapClaims) { c["hop_count"] = -1 }, code: CodeHopCountExceeded},
		{name: "delegation path over the hop maximum", mutate: func(c jwt.MapClaims) {
			path := make([]string, MaxHops+1)
			for i := range path {
				path[i] = fmt.Sprintf("edge-%d", i)
			}
			c["delegation_path"], c["hop_count"] = path, MaxHops
		}, code: CodeHopCountExceeded},
		{name: "missing iat", mutate: func(c jwt.MapClaims) { delete(c, "iat") }, desc: "required claim missing"},
		{name: "not valid yet beyond leeway", mutate: func(c jwt.MapClaims) { c["nbf"] = now.Add(61 * time.Second).Unix() }, desc: "token not valid yet"},
		{name: "scope missing", mutate: func(c jwt.MapClaims) { c["scope"] = "tickets:write" }, code: CodeInsufficientScope},
		{name: "alg none", token: func(t *testing.T, f *fixture, c jwt.MapClaims) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, c)
			tok.Header["kid"] = f.s.kid
			s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			require.NoError(t, err)
			return s
		}, desc: "bad signature or algorithm"},
		{name: "hs256 keyed with the public key", token: func(t *testing.T, f *fixture, c jwt.MapClaims) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
			tok.Header["kid"] = f.s.kid
			pub, _ := f.s.key.PublicKey.Bytes()
			s, err := tok.SignedString(pub)
			require.NoError(t, err)
			return s
		}, desc: "bad signature or algorithm"},
		{name: "es256 signature under another alg", token: func(t *testing.T, f *fixture, c jwt.MapClaims) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
			tok.Header["kid"], tok.Header["alg"] = f.s.kid, "ES384"
			s, err := tok.SignedString(f.s.key)
			require.NoError(t, err)
			return s
		}, desc: "bad signature or algorithm"},
		{name: "unknown key", token: func(t *testing.T, f *fixture, c jwt.MapClaims) string { return other.sign(t, c) }, desc: "unknown signing key"},
		{name: "known kid, other key", token: func(t *testing.T, f *fixture, c jwt.MapClaims) string {
			return signer{kid: f.s.kid, key: other.key}.sign(t, c)
		}, desc: "bad signature or algorithm"},
		{name: "no kid", token: func(t *testing.T, f *fixture, c jwt.MapClaims) string { return signer{key: f.s.key}.sign(t, c) }, desc: "token has no key id"},
		{name: "garbage", token: func(*testing.T, *fixture, jwt.MapClaims) string { return "a.b.c" }, desc: "malformed token"},
		{name: "too large", token: func(*testing.T, *fixture, jwt.MapClaims) string { return string(make([]byte, MaxTokenBytes+1)) }, desc: "bearer token too large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Expect{Scopes: []string{"tickets:read"}})
			f.clock.t = now
			c := validClaims(now)
			if tc.mutate != nil {
				tc.mutate(c)
			}
			tok := ""
			if tc.token != nil {
				tok = tc.token(t, f, c)
			} else {
				tok = f.s.sign(t, c)
			}
			_, err := f.v.Verify(context.Background(), tok)
			require.Error(t, err)
			var ve *Error
			require.ErrorAs(t, err, &ve)
			code := tc.code
			if code == "" {
				code = CodeInvalidToken
			}
			assert.Equal(t, code, ve.Code)
			if tc.desc != "" {
				assert.Equal(t, tc.desc, ve.Description)
			}
			assert.NotContains(t, err.Error(), tok[:min(len(tok), 20)]+"x", "no token text in errors")
		})
	}
}

func TestVerifyLeewayAndSessionTokens(t *testing.T) {
	f := newFixture(t, Expect{Uses: []string{"resource", "session"}, SessionApplications: []string{"app-test"}})
	c := validClaims(f.clock.Now())
	c["exp"] = f.clock.Now().Add(-59 * time.Second).Unix()
	c["iat"] = f.clock.Now().Add(59 * time.Second).Unix()
	c["use"] = "session"
	_, err := f.v.Verify(context.Background(), f.s.sign(t, c))
	require.NoError(t, err, "expiry and issue time inside the 60 s leeway, and session tokens opted in")

	// A lifecycle token as the STS mints it: audience the issuer.
	c = validClaims(f.clock.Now())
	c["use"], c["aud"] = "session", []string{testIssuer}
	_, err = f.v.Verify(context.Background(), f.s.sign(t, c))
	require.NoError(t, err)
	c["client_id"] = "app-other"
	_, err = f.v.Verify(context.Background(), f.s.sign(t, c))
	assert.ErrorContains(t, err, "session tokens of application app-other are not accepted here")
	// The issuer audience admits session tokens only.
	c = validClaims(f.clock.Now())
	c["aud"] = []string{testIssuer}
	_, err = f.v.Verify(context.Background(), f.s.sign(t, c))
	assert.ErrorContains(t, err, "wrong audience")

	_, err = NewVerifier(f.keys, Expect{Issuer: testIssuer, Audience: testResource, Zone: testZone, Uses: []string{"session"}})
	require.ErrorContains(t, err, "needs the applications")

	_, err = NewVerifier(f.keys, Expect{Issuer: testIssuer, Audience: testResource, Zone: testZone, Uses: []string{"gateway"}})
	require.Error(t, err, "gateway tokens can never be accepted")
	_, err = NewVerifier(f.keys, Expect{Audience: testResource, Zone: testZone})
	require.Error(t, err)
}

func TestKeysUnknownKidRefetchAndCooldown(t *testing.T) {
	f := newFixture(t, Expect{})
	ctx := context.Background()
	_, err := f.keys.Key(ctx, "kid-1")
	require.NoError(t, err)
	require.Equal(t, int32(1), f.srv.fetches.Load())

	// A rotation: the new key is found by one refetch.
	rotated := newSigner(t, "kid-2")
	f.srv.set(false, rotated, f.s)
	f.clock.Add(DefaultCooldown)
	_, err = f.v.Verify(ctx, rotated.sign(t, validClaims(f.clock.Now())))
	require.NoError(t, err)
	require.Equal(t, int32(2), f.srv.fetches.Load())

	// Invented kids inside the cooldown cost no fetch.
	for i := range 20 {
		_, err = f.keys.Key(ctx, "kid-bogus-"+string(rune('a'+i)))
		require.ErrorIs(t, err, ErrUnknownKey)
	}
	require.Equal(t, int32(2), f.srv.fetches.Load())

	// After the cooldown, one more fetch.
	f.clock.Add(DefaultCooldown)
	_, err = f.keys.Key(ctx, "kid-bogus")
	require.ErrorIs(t, err, ErrUnknownKey)
	require.Equal(t, int32(3), f.srv.fetches.Load())
}

func TestKeysMaxAgeAndStaleGrace(t *testing.T) {
	f := newFixture(t, Expect{})
	ctx := context.Background()
	_, err := f.keys.Key(ctx, "kid-1")
	require.NoError(t, err)

	f.clock.Add(DefaultMaxAge)
	_, err = f.keys.Key(ctx, "kid-1")
	require.NoError(t, err)
	require.Equal(t, int32(2), f.srv.fetches.Load(), "an aged set refetches")

	// STS down: the aged set is still used within the grace…
	f.srv.set(true)
	f.clock.Add(DefaultMaxAge + time.Minute)
	_, err = f.keys.Key(ctx, "kid-1")
	require.NoError(t, err)
	require.Equal(t, int32(3), f.srv.fetches.Load())

	// …and not past it.
	f.clock.Add(staleGrace)
	_, err = f.keys.Key(ctx, "kid-1")
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrUnknownKey)
}

// TestKeysAgedSetDuringOutage: once the set has aged and the STS is down,
// requests keep using the key within the grace at one fetch per cooldown,
// not one fetch per request.
func TestKeysAgedSetDuringOutage(t *testing.T) {
	f := newFixture(t, Expect{})
	ctx := context.Background()
	_, err := f.keys.Key(ctx, "kid-1")
	require.NoError(t, err)

	f.srv.set(true)
	f.clock.Add(DefaultMaxAge)
	for range 20 {
		_, err = f.keys.Key(ctx, "kid-1")
		require.NoError(t, err)
	}
	assert.Equal(t, int32(2), f.srv.fetches.Load(), "one failed refetch, then the cooldown")

	f.clock.Add(DefaultCooldown)
	for range 20 {
		_, err = f.keys.Key(ctx, "kid-1")
		require.NoError(t, err)
	}
	assert.Equal(t, int32(3), f.srv.fetches.Load())

	// An unknown kid in the cooldown reports the failed fetch, not a
	// missing key.
	_, err = f.keys.Key(ctx, "kid-new")
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrUnknownKey)
}

func TestParse(t *testing.T) {
	s := newSigner(t, "k")
	good := s.jwk()
	offCurve := good
	offCurve.Kid = "off"
	offCurve.Y = good.X
	rsa := wire.JWK{Kty: "RSA", Kid: "r"}
	hs := good
	hs.Kid, hs.Alg = "hs", "HS256"
	enc := good
	enc.Kid, enc.Use = "enc", "enc"
	bare := good // neither use nor alg: a P-256 key usable for ES256
	bare.Kid, bare.Use, bare.Alg = "bare", "", ""
	doc, _ := json.Marshal(wire.JWKS{Keys: []wire.JWK{good, offCurve, rsa, hs, enc, bare}})
	keys, err := Parse(doc)
	require.NoError(t, err)
	assert.Len(t, keys, 2, "an encryption key does not verify signatures")
	assert.Contains(t, keys, "k")
	assert.Contains(t, keys, "bare")

	_, err = Parse([]byte(`{"keys":[]}`))
	require.Error(t, err)
	_, err = Parse([]byte(`{`))
	require.Error(t, err)

	many := wire.JWKS{}
	for i := range MaxKeys + 5 {
		k := good
		k.Kid = string(rune('A' + i))
		many.Keys = append(many.Keys, k)
	}
	doc, _ = json.Marshal(many)
	keys, err = Parse(doc)
	require.NoError(t, err)
	assert.Len(t, keys, MaxKeys)
}

func TestKeysFetchCap(t *testing.T) {
	big := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[` + string(make([]byte, MaxBody)) + `]}`))
	})
	k := NewKeys(KeysConfig{URL: "http://sts.test/jwks", HTTPClient: handlerClient(big)})
	_, err := k.Key(context.Background(), "x")
	require.ErrorContains(t, err, "larger than 256 KiB")
}

func TestKeysErrorHidesURLPassword(t *testing.T) {
	down := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	k := NewKeys(KeysConfig{URL: "http://keys:hunter2@sts.test/jwks?zone_id=z&key=qs3cret", HTTPClient: handlerClient(down)})
	_, err := k.Key(context.Background(), "x")
	require.ErrorIs(t, err, ErrKeysUnavailable)
	assert.NotContains(t, err.Error(), "hunter2")
	assert.NotContains(t, err.Error(), "qs3cret", "a query value can be a key too")
	assert.Contains(t, err.Error(), "sts.test/jwks?zone_id=xxxxx&key=xxxxx", "the error still says where the keys were fetched")
}
