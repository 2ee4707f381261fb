package wire

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// A bigint column comes as a number, as a string on read routes, or as
// null for a row that has none; anything else is refused.
func TestInt64(t *testing.T) {
	for body, want := range map[string]Int64{
		`{"lease_generation":2}`:    2,
		`{"lease_generation":"3"}`:  3,
		`{"lease_generation":null}`: 0,
		`{}`:                        0,
	} {
		var l LeaseResponse
		if assert.NoError(t, json.Unmarshal([]byte(body), &l), body) {
			assert.Equal(t, want, l.LeaseGeneration, body)
		}
	}
	for _, body := range []string{`{"lease_generation":"two"}`, `{"lease_generation":1.5}`, `{"lease_generation":true}`} {
		var l LeaseResponse
		assert.Error(t, json.Unmarshal([]byte(body), &l), body)
	}
}

// A Coordinator id is 1 to 128 of A-Z, a-z, 0-9, "_", ".", "-" and ":".
func TestValidID(t *testing.T) {
	for _, id := range []string{"a", "S1", "E:1", "a.b_c-d", strings.Repeat("x", 128), "0b6f7c1e-2a3d-4e5f-8a9b-0c1d2e3f4a5b"} {
		assert.True(t, ValidID(id), id)
	}
	for _, id := range []string{"", strings.Repeat("x", 129), "a/b", "a b", "a%2F", "é", "a\n"} {
		assert.False(t, ValidID(id), id)
	}
}

// A bearer token is RFC 6750's b64token: at least one character before
// any "=" padding.
func TestBearerToken(t *testing.T) {
	for _, s := range []string{"a", "eyJ.x-y_z~+/", "abc==", "tok-1"} {
		assert.True(t, BearerToken(s), s)
	}
	for _, s := range []string{"", "=", "==", "a b", "a\r\nX: y", "a=b", "é"} {
		assert.False(t, BearerToken(s), s)
	}
}
