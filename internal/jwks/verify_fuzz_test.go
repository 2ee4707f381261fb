package jwks

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// fuzzHeaders are JOSE headers a mutation swaps in, keeping the payload and
// the signature: none of them may make a token verify.
var fuzzHeaders = []string{
	`{"alg":"none","kid":"kid-1"}`,
	`{"alg":"HS256","kid":"kid-1"}`,
	`{"alg":"RS256","kid":"kid-1"}`,
	`{"alg":"ES384","kid":"kid-1"}`,
	`{"alg":"es256","kid":"kid-1"}`,
	`{"alg":"ES256"}`,
	`{"alg":"ES256","kid":""}`,
	`{"alg":"ES256","kid":"kid-2"}`,
	`{"alg":"ES256","kid":"kid-9"}`,
	`{"alg":"ES256","kid":"kid-1","typ":"JWT"}`,
	`{"alg":"ES256","kid":"kid-1","alg":"none"}`,
	`{"kid":"kid-1","alg":"ES256"}`,
	`{"alg":"ES256","kid":"kid-1"} `,
	`{"alg":["ES256"],"kid":"kid-1"}`,
	`null`,
}

// badClaims are claim sets each breaking one rule; signed with the zone's
// own key they must still be refused.
func badClaims(now time.Time) []jwt.MapClaims {
	edits := []func(jwt.MapClaims){
		func(c jwt.MapClaims) { c["exp"] = now.Add(-2 * time.Hour).Unix() },
		func(c jwt.MapClaims) { c["iat"] = now.Add(2 * time.Hour).Unix() },
		func(c jwt.MapClaims) { c["nbf"] = now.Add(2 * time.Hour).Unix() },
		func(c jwt.MapClaims) { c["iss"] = testIssuer + "/" },
		func(c jwt.MapClaims) { c["aud"] = []string{"resource://other"} },
		func(c jwt.MapClaims) { c["aud"] = testIssuer },
		func(c jwt.MapClaims) { c["use"] = "gateway" },
		func(c jwt.MapClaims) { c["use"] = "session"; c["aud"] = testIssuer },
		func(c jwt.MapClaims) { c["sub_type"] = "robot" },
		func(c jwt.MapClaims) { c["zone_id"] = "zone-other" },
		func(c jwt.MapClaims) { c["hop_count"] = MaxHops + 1 },
		func(c jwt.MapClaims) { c["hop_count"] = -1 },
		func(c jwt.MapClaims) { c["scope"] = "tickets:write" },
		func(c jwt.MapClaims) { delete(c, "jti") },
		func(c jwt.MapClaims) { delete(c, "exp") },
		func(c jwt.MapClaims) { delete(c, "root_sid") },
	}
	out := make([]jwt.MapClaims, len(edits))
	for i, edit := range edits {
		out[i] = validClaims(now)
		edit(out[i])
	}
	return out
}

// FuzzVerifyMutatedTokens mutates valid tokens (byte flips, inserts and
// deletes, swapped segments, swapped headers and payloads, signatures by
// another key, claims breaking a rule) and checks that the verifier accepts
// exactly the valid tokens, returns each one's own claims, and caches
// nothing else.
//
// The input is a base token (an index; past the valid tokens, raw itself)
// and a program of 3-byte operations (kind, a, b); raw also serves as a
// header or payload.
func FuzzVerifyMutatedTokens(f *testing.F) {
	fx := newFixture(f, Expect{Scopes: []string{"tickets:read"}})
	other := newSigner(f, "kid-2")
	attacker := newSigner(f, "kid-1") // not the zone's key, same kid
	fx.srv.set(false, fx.s, other)
	now := fx.clock.Now()

	second := validClaims(now)
	second["jti"], second["aud"] = "0198-jti-2", []string{"resource://a", testResource}
	valid := []string{fx.s.sign(f, validClaims(now)), other.sign(f, second)}
	jti := map[string]string{valid[0]: "0198-jti", valid[1]: "0198-jti-2"}
	bad := badClaims(now)

	ctx := context.Background()
	for _, tok := range valid {
		_, err := fx.v.Verify(ctx, tok) // warm the key set and the cache
		require.NoError(f, err)
	}

	enc := base64.RawURLEncoding.EncodeToString
	resign := func(s signer, head, payload string) string {
		in := head + "." + payload
		sig, err := jwt.SigningMethodES256.Sign(in, s.key)
		if err != nil {
			panic(err)
		}
		return in + "." + enc(sig)
	}

	f.Add(uint8(0), []byte{}, "")
	f.Add(uint8(1), []byte{}, "")
	f.Add(uint8(2), []byte{}, "")
	f.Add(uint8(2), []byte{}, "a.b.c")
	f.Add(uint8(0), []byte{0, 5, 1}, "")       // flip a header byte
	f.Add(uint8(0), []byte{0, 0xff, 0x20}, "") // flip a signature byte
	f.Add(uint8(1), []byte{1, 40, '.'}, "")    // insert a dot
	f.Add(uint8(0), []byte{2, 70, 0}, "")      // delete a byte
	f.Add(uint8(0), []byte{3, 0, 1}, "")       // swap header and payload
	f.Add(uint8(0), []byte{3, 1, 2}, "")       // swap payload and signature
	f.Add(uint8(0), []byte{4, 0, 0}, "")       // alg none
	f.Add(uint8(0), []byte{4, 7, 0}, "")       // kid of the other key
	f.Add(uint8(1), []byte{4, 255, 0}, `{"alg":"ES256","kid":"kid-1"}`)
	f.Add(uint8(0), []byte{5, 0, 0}, "") // the other token's payload
	f.Add(uint8(0), []byte{5, 255, 0}, `{"iss":"x"}`)
	f.Add(uint8(0), []byte{6, 0, 0}, "")           // signed by another key
	f.Add(uint8(0), []byte{7, 3, 0}, "")           // signed by the zone, bad claims
	f.Add(uint8(1), []byte{7, 10, 0, 0, 9, 3}, "") // then flipped
	f.Add(uint8(0), []byte{8, 30, 0}, "")          // truncated
	f.Add(uint8(0), []byte{9, 0, 0}, "==")         // text appended
	f.Add(uint8(0), []byte{9, 0, 0}, "\r\n")       // a line break the decoder would skip
	f.Add(uint8(0), []byte("0"), "0")              // too short a program: the token as is

	f.Fuzz(func(t *testing.T, base uint8, ops []byte, raw string) {
		tok := raw
		if int(base) < len(valid) {
			tok = valid[base]
		}
		for i := 0; i+2 < len(ops) && i < 3*16; i += 3 {
			tok = mutate(tok, ops[i], ops[i+1], ops[i+2], raw, mutators{
				headers: fuzzHeaders, valid: valid, bad: bad,
				resign: func(h, p string) string { return resign(attacker, h, p) },
				zone:   func(c jwt.MapClaims) string { return fx.s.sign(t, c) },
			})
		}
		claims, err := fx.v.Verify(ctx, tok)
		want, isValid := jti[tok]
		if isValid {
			require.NoError(t, err)
			require.Equal(t, want, claims.ID, "a token gets its own claims")
		} else {
			require.Error(t, err, "a token that is not exactly a valid one is refused")
			require.Nil(t, claims)
			if len(tok) > 16 {
				require.NotContains(t, err.Error(), tok, "an error never holds the token")
			}
		}
		fx.v.cache.mu.RLock()
		defer fx.v.cache.mu.RUnlock()
		for k, e := range fx.v.cache.m {
			require.Contains(t, jti, k, "only verified tokens are cached")
			require.Equal(t, jti[k], e.claims.ID)
		}
	})
}

type mutators struct {
	headers []string
	valid   []string
	bad     []jwt.MapClaims
	resign  func(head, payload string) string // by a key outside the zone
	zone    func(jwt.MapClaims) string        // by the zone's key
}

// mutate applies one operation to tok.
func mutate(tok string, op, a, b byte, raw string, m mutators) string {
	pos := func() int {
		if tok == "" {
			return 0
		}
		return (int(a) | int(b)<<8) % len(tok)
	}
	segs := strings.SplitN(tok, ".", 3)
	for len(segs) < 3 {
		segs = append(segs, "")
	}
	enc := base64.RawURLEncoding.EncodeToString
	switch op % 10 {
	case 0: // flip bits of one byte
		if tok == "" {
			return tok
		}
		p, x := int(a)%len(tok), b
		if x == 0 {
			x = 1
		}
		bs := []byte(tok)
		bs[p] ^= x
		return string(bs)
	case 1: // insert a byte
		p := 0
		if tok != "" {
			p = int(a) % (len(tok) + 1)
		}
		return tok[:p] + string(rune(b&0x7f)) + tok[p:]
	case 2: // delete a byte
		if tok == "" {
			return tok
		}
		p := pos()
		return tok[:p] + tok[p+1:]
	case 3: // swap two segments
		i, j := int(a)%3, int(b)%3
		segs[i], segs[j] = segs[j], segs[i]
		return strings.Join(segs, ".")
	case 4: // another header, same payload and signature
		h := raw
		if int(a) < len(m.headers) {
			h = m.headers[a]
		}
		segs[0] = enc([]byte(h))
		return strings.Join(segs, ".")
	case 5: // another payload, same header and signature
		if int(a) < len(m.valid) {
			segs[1] = strings.Split(m.valid[a], ".")[1]
		} else {
			segs[1] = enc([]byte(raw))
		}
		return strings.Join(segs, ".")
	case 6: // header and payload signed by a key outside the zone
		return m.resign(segs[0], segs[1])
	case 7: // signed by the zone, with a claim breaking a rule
		return m.zone(m.bad[int(a)%len(m.bad)])
	case 8: // truncate
		return tok[:pos()]
	default: // append raw
		return tok + raw
	}
}
