package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func BenchmarkVerifyWarm(b *testing.B) {
	for _, bc := range []struct {
		name  string
		cache int
	}{{"new-token", -1}, {"repeated-token", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			f := newFixture(b, Expect{CacheSize: bc.cache})
			tok := f.s.sign(b, validClaims(f.clock.Now()))
			ctx := context.Background()
			_, err := f.v.Verify(ctx, tok)
			require.NoError(b, err)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyWarmParallel is BenchmarkVerifyWarm with every P
// verifying at once through one Verifier, as the requests of a server do,
// on the real clock: the fixture's settable one takes a lock production
// does not.
func BenchmarkVerifyWarmParallel(b *testing.B) {
	for _, bc := range []struct {
		name  string
		cache int
	}{{"new-token", -1}, {"repeated-token", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			srv, s := &jwksServer{}, newSigner(b, "kid-1")
			srv.set(false, s)
			keys := NewKeys(KeysConfig{URL: testIssuer + "/.well-known/jwks.json?zone_id=" + testZone, HTTPClient: handlerClient(srv)})
			v, err := NewVerifier(keys, Expect{Issuer: testIssuer, Audience: testResource, Zone: testZone, CacheSize: bc.cache})
			require.NoError(b, err)
			tok := s.sign(b, validClaims(time.Now()))
			ctx := context.Background()
			_, err = v.Verify(ctx, tok)
			require.NoError(b, err)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := v.Verify(ctx, tok); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkECDSAFloor is the P-256 signature check alone, the floor under
// BenchmarkVerifyWarm on the same machine.
func BenchmarkECDSAFloor(b *testing.B) {
	s := newSigner(b, "k")
	h := sha256.Sum256([]byte("header.payload"))
	sig, err := ecdsa.SignASN1(rand.Reader, s.key, h[:])
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if !ecdsa.VerifyASN1(&s.key.PublicKey, h[:], sig) {
			b.Fatal("bad signature")
		}
	}
}
