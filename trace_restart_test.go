package caracal_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/internal/envelope"
)

// forwarded serves hdr to a service behind a trusted middleware that passes
// the bound agent on with Headers, and returns the headers the next service
// received.
func forwarded(t *testing.T, hdr http.Header) http.Header {
	t.Helper()
	c := mwClient(t, http.DefaultClient)
	mw, err := c.Middleware(caracal.TrustedPropagation())
	require.NoError(t, err)

	var got atomic.Pointer[http.Header]
	next := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		got.Store(&h)
	}))
	defer next.Close()
	svc := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, err := c.Headers(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, next.URL, nil)
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp.Body.Close()
	})))
	defer svc.Close()

	req, err := http.NewRequest(http.MethodGet, svc.URL, nil)
	require.NoError(t, err)
	req.Header = hdr
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	h := got.Load()
	require.NotNil(t, h)
	return *h
}

// A tracestate describes the caller's position in the trace its traceparent
// names (W3C Trace Context: a tracestate is not parsed when the traceparent
// is not). Without a usable traceparent the agent starts a new trace, and
// the old tracestate must not travel with it.
func TestTracestateNotCarriedIntoARestartedTrace(t *testing.T) {
	for name, tp := range map[string]string{
		"absent":   "",
		"invalid":  "00-" + mwTrace + "-0000000000000000-01",
		"version":  "ff-" + mwTrace + "-3c4d5e6f708192a3-01",
		"too long": "00-" + mwTrace + "-3c4d5e6f708192a3-01-x",
	} {
		t.Run(name, func(t *testing.T) {
			hdr := http.Header{"Authorization": {"Bearer tok"}, "Tracestate": {"congo=t61rcWkgMzE"}}
			if tp != "" {
				hdr["Traceparent"] = []string{tp}
			}
			out := forwarded(t, hdr)
			traceID, _, _, ok := envelope.ParseTraceparent(out.Get("Traceparent"))
			require.True(t, ok, out.Get("Traceparent"))
			assert.NotEqual(t, mwTrace, traceID, "a new trace")
			assert.Empty(t, out.Values("Tracestate"))
		})
	}

	t.Run("kept with its trace", func(t *testing.T) {
		const span = "3c4d5e6f708192a3"
		out := forwarded(t, http.Header{"Authorization": {"Bearer tok"},
			"Traceparent": {"00-" + mwTrace + "-" + span + "-00"}, "Tracestate": {"congo=t61rcWkgMzE"}})
		traceID, spanID, flags, ok := envelope.ParseTraceparent(out.Get("Traceparent"))
		require.True(t, ok)
		assert.Equal(t, mwTrace, traceID)
		assert.NotEqual(t, span, spanID)
		assert.Equal(t, "00", flags)
		assert.Equal(t, []string{"congo=t61rcWkgMzE"}, out.Values("Tracestate"))
	})
}
