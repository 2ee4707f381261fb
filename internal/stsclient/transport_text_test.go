package stsclient

import (
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
