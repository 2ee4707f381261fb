package stsclient

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/apierr"
)

func TestInvalidSuccessBodies(t *testing.T) {
	for name, tc := range map[string]struct{ ct, body string }{
		"no token":          {"application/json", `{"token_type":"Bearer","expires_in":900}`},
		"wrong token type":  {"application/json", `{"access_token":"x","token_type":"MAC","expires_in":900}`},
		"zero expiry":       {"application/json", `{"access_token":"x","expires_in":0}`},
		"fractional expiry": {"application/json", `{"access_token":"x","expires_in":900.5}`},
		"string expiry":     {"application/json", `{"access_token":"x","expires_in":"900"}`},
		"not json":          {"application/json", `<html>`},
		"html content type": {"text/html", `{"access_token":"x","expires_in":900}`},
		// A token is sent as a header value: one that could split or
		// corrupt a header is not a bearer token (RFC 6750 §2.1).
		"line break in token": {"application/json", `{"access_token":"a.b.c\r\nX-Injected: 1","expires_in":900}`},
		"space in token":      {"application/json", `{"access_token":"a b","expires_in":900}`},
		"non-ascii token":     {"application/json", `{"access_token":"a\u00e9b","expires_in":900}`},
		"padding inside":      {"application/json", `{"access_token":"a=b","expires_in":900}`},
	} {
		t.Run(name, func(t *testing.T) {
			sts := &fakeSTS{answer: func(w http.ResponseWriter, r *http.Request, n int64) {
				w.Header().Set("Content-Type", tc.ct)
				_, _ = io.WriteString(w, tc.body)
			}}
			_, err := newClient(t, sts).Lifecycle(t.Context())
			require.Error(t, err)
			assert.Contains(t, err.Error(), "invalid token response")
			assert.NotContains(t, err.Error(), secret)
		})
	}
	// Accepted variants: no content type, a structured JSON type,
	// lower-case bearer, charset param.
	for name, tc := range map[string]struct{ ct, body, want string }{
		"no content type": {"", `{"access_token":"x","expires_in":900}`, "x"},
		"+json suffix":    {"application/vnd.caracal.token+json", `{"access_token":"x","expires_in":900}`, "x"},
		"bearer":          {"application/json; charset=utf-8", `{"access_token":"x","token_type":"bearer","expires_in":900}`, "x"},
		"b64token chars":  {"application/json", `{"access_token":"x-._~+/9==","expires_in":900}`, "x-._~+/9=="},
	} {
		t.Run(name, func(t *testing.T) {
			sts := &fakeSTS{answer: func(w http.ResponseWriter, r *http.Request, n int64) {
				w.Header()["Content-Type"] = []string{tc.ct}
				_, _ = io.WriteString(w, tc.body)
			}}
			tok, err := newClient(t, sts).Lifecycle(t.Context())
			require.NoError(t, err)
			assert.Equal(t, tc.want, tok.Value)
		})
	}
}

// What the server sent in a refused token answer's content type or
// token_type reaches the error (and every log line printing it) bounded.
func TestInvalidTokenResponseTextIsBounded(t *testing.T) {
	long := strings.Repeat("x", 100_000)
	for name, tc := range map[string]struct{ ct, body string }{
		"content type": {"text/" + long, `{"access_token":"x","expires_in":900}`},
		"token type":   {"application/json", `{"access_token":"x","token_type":"` + long + `","expires_in":900}`},
	} {
		t.Run(name, func(t *testing.T) {
			sts := &fakeSTS{answer: func(w http.ResponseWriter, r *http.Request, n int64) {
				w.Header().Set("Content-Type", tc.ct)
				_, _ = io.WriteString(w, tc.body)
			}}
			_, err := newClient(t, sts).Lifecycle(t.Context())
			require.ErrorIs(t, err, apierr.ErrUnavailable)
			assert.Contains(t, err.Error(), "invalid token response")
			assert.Less(t, len(err.Error()), 512, "the message is bounded")
		})
	}
}
