package caracal_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// An answer that announces a body far longer than any Caracal answer (a
// broken proxy in front of the STS, say) is read only up to the SDK's cap:
// the call fails with the answer's status, and the client never sizes a
// buffer by the length announced.
func TestAnswerAnnouncingAHugeBodyIsReadWithinTheCap(t *testing.T) {
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.FormatInt(1<<50, 10))
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"invalid_request"}`)
	}))
	t.Cleanup(sts.Close)
	st := caracaltest.Start(t)
	c, err := st.NewClient(caracal.WithSTSURL(sts.URL))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })

	_, err = c.Spawn(t.Context())
	require.Error(t, err)
	var apiErr *caracal.Error
	require.True(t, errors.As(err, &apiErr), "%v", err)
	assert.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
}
