package jwks

import (
	"context"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A time claim too large for a Unix time must not wrap around into the
// past: a token not valid until then, or issued then, is refused, and so is
// one expiring then rather than never. Each is signed by the zone's key.
func TestVerifyTimeClaimsBeyondRange(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(jwt.MapClaims)
	}{
		{"nbf huge", func(c jwt.MapClaims) { c["nbf"] = 1e19 }},
		{"iat huge", func(c jwt.MapClaims) { c["iat"] = 1e19 }},
		{"exp huge", func(c jwt.MapClaims) { c["exp"] = 1e19 }},
		{"exp huge negative", func(c jwt.MapClaims) { c["exp"] = -1e19 }},
		{"nbf just past int64", func(c jwt.MapClaims) { c["nbf"] = 9.2233720368547e18 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Expect{})
			c := validClaims(f.clock.Now())
			tc.mutate(c)
			tok := f.s.sign(t, c)
			_, err := f.v.Verify(context.Background(), tok)
			var ve *Error
			require.ErrorAs(t, err, &ve)
			assert.Equal(t, CodeInvalidToken, ve.Code)
			assert.False(t, f.cached(tok))
		})
	}
}
