package caracal_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// The middleware's warnings (a malformed envelope, signing keys that cannot
// be fetched) carry the context of the request that showed the problem, so
// that a log handler can tie them to it (its trace, say).
func TestMiddlewareWarningsCarryTheRequestContext(t *testing.T) {
	failing := &http.Client{Transport: rtFunc(func(*http.Request) (*http.Response, error) {
		return nil, errors.New("connection refused")
	})}
	s := newMWSigner(t, "kid-1")
	for name, tc := range map[string]struct {
		hc     *http.Client
		opt    caracal.MiddlewareOption
		header http.Header
	}{
		"malformed envelope": {http.DefaultClient, caracal.TrustedPropagation(), http.Header{"Authorization": {"Bearer t"}, "Traceparent": {"garbage"}}},
		"key outage":         {failing, caracal.VerifyTokens(mwResource), http.Header{"Authorization": {"Bearer " + s.sign(t, resourceClaims())}}},
	} {
		t.Run(name, func(t *testing.T) {
			logged := &logRecorder{}
			c := mwClient(t, tc.hc, caracal.WithLogger(slog.New(logged)))
			mw, err := c.Middleware(tc.opt)
			require.NoError(t, err)
			var got seen
			req := httptest.NewRequest(http.MethodGet, "http://resource.test/", nil)
			req.Header = tc.header
			req = req.WithContext(context.WithValue(req.Context(), requestMark{}, name))
			mw(got.handler()).ServeHTTP(httptest.NewRecorder(), req)
			var marks []any
			for _, r := range logged.all() {
				marks = append(marks, r.ctx.Value(requestMark{}))
			}
			assert.Equal(t, []any{name}, marks)
		})
	}
}

type requestMark struct{}
