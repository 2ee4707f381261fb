package apierr

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// ReadBody reads at most limit bytes whatever length the answer announces:
// a shorter announcement does not lift the limit, and a far longer one is
// not taken as the size to allocate.
func TestReadBodyKeepsToTheLimitWhateverTheLengthAnnounced(t *testing.T) {
	const limit = 8
	for _, tc := range []struct {
		name   string
		length int64
		body   string
		want   string
	}{
		{"exact", 5, "hello", "hello"},
		{"announced shorter than the body", 4, strings.Repeat("x", 20), strings.Repeat("x", limit)},
		{"announced beyond any allocation", 1 << 50, "short", "short"},
		{"unknown", -1, strings.Repeat("y", 20), strings.Repeat("y", limit)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: http.StatusOK, ContentLength: tc.length, Body: io.NopCloser(strings.NewReader(tc.body))}
			got, err := ReadBody(resp, limit)
			assert.NoError(t, err)
			assert.Equal(t, tc.want, string(got))
		})
	}
}
