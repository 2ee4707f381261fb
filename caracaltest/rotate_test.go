package caracaltest_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/caracaltest"
)

// jwk is one key of the JWKS document.
type jwk struct {
	Kty, Crv, Use, Kid, Alg, X, Y string
}

// jwks fetches the zone's key set over HTTP and returns its keys, current
// first, requiring a 200 with the STS's caching header.
func (w wire) jwks() []jwk {
	w.t.Helper()
	r := w.do("GET", w.s.STSURL()+"/.well-known/jwks.json?zone_id="+w.s.Zone(), nil)
	require.Equal(w.t, 200, r.status, r.raw)
	assert.Equal(w.t, "public, max-age=300, must-revalidate", r.header.Get("Cache-Control"))
	var set struct{ Keys []jwk }
	require.NoError(w.t, json.Unmarshal([]byte(r.raw), &set))
	return set.Keys
}

func kids(keys []jwk) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.Kid
	}
	return out
}

// kidOf reads the kid header of a JWT without verifying it.
func kidOf(t *testing.T, token string) string {
	t.Helper()
	head, _, ok := strings.Cut(token, ".")
	require.True(t, ok)
	b, err := base64.RawURLEncoding.DecodeString(head)
	require.NoError(t, err)
	var h struct{ Kid string }
	require.NoError(t, json.Unmarshal(b, &h))
	return h.Kid
}

// verifiesWith reports whether token's ES256 signature checks out under the
// key of keys that its kid names.
func verifiesWith(t *testing.T, token string, keys []jwk) bool {
	t.Helper()
	_, err := jwt.Parse(token, func(jt *jwt.Token) (any, error) {
		for _, k := range keys {
			if k.Kid == jt.Header["kid"] {
				x, _ := base64.RawURLEncoding.DecodeString(k.X)
				y, _ := base64.RawURLEncoding.DecodeString(k.Y)
				return &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}, nil
			}
		}
		return nil, jwt.ErrTokenUnverifiable
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation())
	return err == nil
}

// TestRotateSigningKey: after a rotation new tokens carry the new kid, the
// JWKS lists the new key and the previous one, and a mandate signed before
// the rotation is still accepted by the Gateway. The previous key leaves the
// set 24 h after the rotation on the stack's clock.
func TestRotateSigningKey(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			fc := caracaltest.NewFakeClock(time.Now())
			s, hc := m.start(t, caracaltest.WithClock(fc))
			w := wire{t: t, s: s, hc: hc}

			tok0 := w.lifecycle()
			kid0 := kidOf(t, tok0)
			before := w.jwks()
			require.Equal(t, []string{kid0}, kids(before))
			_, child, edge := w.narrowed(tok0, "reader", "tickets:read")
			m0 := w.mint(child, edge, "tickets:read")
			require.Equal(t, 200, m0.status, m0.raw)
			mandate0 := m0.body["access_token"].(string)
			require.Equal(t, kid0, kidOf(t, mandate0))

			kid1 := s.RotateSigningKey()
			require.NotEqual(t, kid0, kid1)
			after := w.jwks()
			assert.Equal(t, []string{kid1, kid0}, kids(after), "current key first, then the previous one")
			assert.Equal(t, before[0], after[1], "the previous key is published unchanged")
			for _, k := range after {
				assert.Equal(t, jwk{Kty: "EC", Crv: "P-256", Use: "sig", Kid: k.Kid, Alg: "ES256", X: k.X, Y: k.Y}, k)
			}

			tok1 := w.lifecycle()
			assert.Equal(t, kid1, kidOf(t, tok1))
			m1 := w.mint(child, edge, "tickets:read")
			require.Equal(t, 200, m1.status, m1.raw)
			assert.Equal(t, kid1, kidOf(t, m1.body["access_token"].(string)))
			assert.True(t, verifiesWith(t, tok1, after))
			assert.True(t, verifiesWith(t, tok0, after), "tokens of the previous key still verify")
			assert.False(t, verifiesWith(t, tok1, before), "the new key was not published before")

			// The Gateway verifies with the whole set: the old mandate and
			// the new one both go through.
			for _, mandate := range []string{mandate0, m1.body["access_token"].(string)} {
				r := w.do("GET", s.GatewayURL()+"/tickets/1", nil,
					"Authorization", "Bearer "+mandate, "X-Caracal-Resource", tickets)
				assert.Equal(t, 200, r.status, r.raw)
			}

			fc.Advance(24*time.Hour - time.Second)
			assert.Equal(t, []string{kid1, kid0}, kids(w.jwks()), "listed for 24 h")
			fc.Advance(time.Second)
			assert.Equal(t, []string{kid1}, kids(w.jwks()), "gone 24 h after the rotation")
			assert.Equal(t, kid1, kidOf(t, w.lifecycle()))
		})
	}
}

// TestRotateSigningKeyTwice: the set holds the current key and the previous
// one only, so a second rotation drops the first key at once, and each
// rotation's grace runs from its own time.
func TestRotateSigningKeyTwice(t *testing.T) {
	fc := caracaltest.NewFakeClock(time.Now())
	s, hc := modes[0].start(t, caracaltest.WithClock(fc))
	w := wire{t: t, s: s, hc: hc}
	kid0 := kidOf(t, w.lifecycle())

	kid1 := s.RotateSigningKey()
	fc.Advance(time.Hour)
	kid2 := s.RotateSigningKey()
	assert.Equal(t, []string{kid2, kid1}, kids(w.jwks()))
	assert.NotContains(t, kids(w.jwks()), kid0)
	assert.Equal(t, kid2, kidOf(t, w.lifecycle()))

	fc.Advance(23 * time.Hour)
	assert.Equal(t, []string{kid2, kid1}, kids(w.jwks()), "kid1 retired an hour later than the first rotation")
	fc.Advance(time.Hour)
	assert.Equal(t, []string{kid2}, kids(w.jwks()))
}

// TestRotateSigningKeyBeforeFirstToken: a zone's key set is published on
// its first exchange; a rotation publishes it too.
func TestRotateSigningKeyBeforeFirstToken(t *testing.T) {
	s, hc := modes[0].start(t)
	w := wire{t: t, s: s, hc: hc}
	r := w.do("GET", s.STSURL()+"/.well-known/jwks.json?zone_id="+s.Zone(), nil)
	require.Equal(t, 404, r.status, r.raw)

	kid := s.RotateSigningKey()
	keys := w.jwks()
	require.Len(t, keys, 2)
	assert.Equal(t, kid, keys[0].Kid)
	assert.Equal(t, kid, kidOf(t, w.lifecycle()))
}

// TestRotateSigningKeyConcurrent: rotations race with exchanges and JWKS
// reads (run under the race detector); the set always holds the current key
// and the previous one, and the last rotation signs what follows it.
func TestRotateSigningKeyConcurrent(t *testing.T) {
	s, hc := modes[1].start(t)
	w := wire{t: t, s: s, hc: hc}
	s.RotateSigningKey()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10 {
			s.RotateSigningKey()
		}
	}()
	for range 20 {
		w.lifecycle()
		assert.Len(t, w.jwks(), 2)
	}
	<-done
	last := s.RotateSigningKey()
	assert.Equal(t, last, kidOf(t, w.lifecycle()))
	assert.Equal(t, last, w.jwks()[0].Kid)
}
