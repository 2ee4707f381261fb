package caracal_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/envelope"
)

// A traceparent of a later version is read on its first four fields, of
// which only the sampled bit of the flags is defined here (W3C Trace
// Context, versioning of traceparent); the version-00 traceparent sent on
// must not set flags that version 00 reserves.
func TestFutureTraceparentFlagsKeepOnlySampled(t *testing.T) {
	for flags, want := range map[string]string{"ff": "01", "fe": "00", "03": "01", "01": "01", "00": "00"} {
		t.Run(flags, func(t *testing.T) {
			out := forwarded(t, http.Header{"Authorization": {"Bearer tok"},
				"Traceparent": {"cc-" + mwTrace + "-3c4d5e6f708192a3-" + flags + "-future-fields"}})
			traceID, _, got, ok := envelope.ParseTraceparent(out.Get("Traceparent"))
			require.True(t, ok, out.Get("Traceparent"))
			assert.Equal(t, mwTrace, traceID)
			assert.Equal(t, want, got)
			assert.Equal(t, "00-", out.Get("Traceparent")[:3])
		})
	}
}
