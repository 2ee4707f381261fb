package stsclient

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/apierr"
)

// A server that answers with a status line megabytes long gets a transport
// error from net/http that quotes all of it; the error that reaches the
// caller (and the logs) carries a bounded part of that text, and still
// unwraps to what net/http returned.
func TestMalformedAnswerTextIsBounded(t *testing.T) {
	sts := &fakeSTS{answer: func(w http.ResponseWriter, r *http.Request, n int64) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 " + strings.Repeat("9", 2<<20) + " OK\r\n\r\n")
		_ = buf.Flush()
	}}
	_, err := newClient(t, sts).Lifecycle(t.Context())
	require.ErrorIs(t, err, apierr.ErrUnavailable)
	assert.Less(t, len(err.Error()), 4096)
	var ue *url.Error
	assert.ErrorAs(t, err, &ue)
}

// The sid of a lifecycle token is logged only when it has the form of an
// id: the claim is the STS's text, and a token holds up to a megabyte of it.
func TestLoggedSIDIsBounded(t *testing.T) {
	var logs strings.Builder
	sts := &fakeSTS{answer: func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":900}`,
			jwt(map[string]any{"sid": strings.Repeat("s", 100_000) + "\x1b[2J", "use": "session", "exp": 1787393700}))
	}}
	c := newClient(t, sts, func(cfg *Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	_, err := c.Lifecycle(t.Context())
	require.NoError(t, err)
	assert.Contains(t, logs.String(), "lifecycle token exchanged")
	assert.Less(t, logs.Len(), 1000)
}
