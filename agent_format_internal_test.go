package caracal

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestAgentFormatHidesToken(t *testing.T) {
	const bearer = "eyJhbGciOiJFUzI1NiJ9.secret-payload.sig"
	a := &Agent{zoneID: "z", applicationID: "app", sessionID: "S", delegationID: "E", hop: 1, token: pinned(bearer)}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		for _, arg := range []any{a, *a} {
			out := fmt.Sprintf(verb, arg)
			assert.NotContains(t, out, bearer, verb)
			assert.NotContains(t, out, "secret-payload", verb)
		}
	}
	assert.Contains(t, fmt.Sprint(a), "S", "the session id is shown")
	assert.Equal(t, "<nil>", fmt.Sprint((*Agent)(nil)))

	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("bound", "agent", a)
	slog.New(slog.NewJSONHandler(&b, nil)).Info("bound", "agent", a)
	assert.NotContains(t, b.String(), "secret-payload")
}

// pinned is the token field of an inbound Agent bound with tok.
func pinned(tok string) *string { return &tok }
