package jwks

import (
	"context"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A token naming critical header extensions (RFC 7515 §4.1.11) is refused:
// this verifier understands none, and the STS sets none. It is signed by
// the zone's key, so only the header can refuse it.
func TestVerifyRefusesCriticalHeaderExtensions(t *testing.T) {
	for name, crit := range map[string]any{
		"unknown extension": []string{"urn:example:policy"},
		"b64":               []string{"b64"},
		"empty list":        []string{},
		"null":              nil,
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, Expect{})
			tok := jwt.NewWithClaims(jwt.SigningMethodES256, validClaims(f.clock.Now()))
			tok.Header["kid"] = f.s.kid
			tok.Header["crit"] = crit
			tok.Header["b64"] = true
			tok.Header["urn:example:policy"] = "x"
			s, err := tok.SignedString(f.s.key)
			require.NoError(t, err)
			_, err = f.v.Verify(context.Background(), s)
			var ve *Error
			require.ErrorAs(t, err, &ve)
			assert.Equal(t, CodeInvalidToken, ve.Code)
			assert.False(t, f.cached(s))
		})
	}
}
