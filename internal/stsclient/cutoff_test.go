package stsclient

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/apierr"
)

// cutOff answers status with a body that ends early: the declared length
// is never sent and the connection closes.
func cutOff(w http.ResponseWriter, status int, partial string) {
	w.Header().Set("Content-Length", "4096")
	w.Header().Set("X-Request-Id", "hdr-id")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, partial)
	w.(http.Flusher).Flush()
	if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
		_ = conn.Close()
	}
}

// A refusal whose body is cut off keeps its status and request id, and
// what was read of the body, which may end inside an echoed secret, is not
// used.
func TestErrorWithCutOffBody(t *testing.T) {
	sts := &fakeSTS{answer: func(w http.ResponseWriter, r *http.Request, n int64) {
		cutOff(w, 401, "echo: client_secret="+secret[:len(secret)-2])
	}}
	_, err := newClient(t, sts).Lifecycle(t.Context())
	var e *apierr.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 401, e.StatusCode)
	assert.Equal(t, "hdr-id", e.RequestID)
	assert.NotErrorIs(t, err, apierr.ErrUnavailable)
	assert.NotContains(t, err.Error(), secret[:4])

	sts = &fakeSTS{answer: func(w http.ResponseWriter, r *http.Request, n int64) {
		cutOff(w, 404, `{"error":"resource_not_found"`)
	}}
	_, err = newClient(t, sts).WaitApproval(t.Context(), "ap-1")
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 404, e.StatusCode)
	assert.ErrorIs(t, err, apierr.ErrNotFound)
}
