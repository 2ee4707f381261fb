package caracal_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// The methods of a zero Client that take no context neither panic: Config
// returns the zero configuration, printing it shows that configuration,
// and GatewayRequest says how to make a client.
func TestZeroClientConfigPrintAndGatewayRequest(t *testing.T) {
	c := new(caracal.Client)
	var cfg caracal.Config
	require.NotPanics(t, func() { cfg = c.Config() })
	assert.Equal(t, caracal.Config{}, cfg)
	for _, verb := range []string{"%v", "%s", "%+v", "%#v"} {
		assert.NotContains(t, fmt.Sprintf(verb, c), "PANIC", verb)
	}
	var err error
	require.NotPanics(t, func() { _, err = c.GatewayRequest(t.Context(), "GET", "tickets", "/v1", nil) })
	require.ErrorIs(t, err, caracal.ErrInvalidRequest)
	assert.Contains(t, err.Error(), "caracal.New")
}

// A zero Client's Transport and HTTPClient refuse every request, as its
// other methods refuse their calls, instead of panicking or sending the
// request as it is: the request's body is closed and nothing is sent.
func TestZeroClientTransportRefusesRequests(t *testing.T) {
	var sent atomic.Bool
	upstream := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { sent.Store(true) }))
	t.Cleanup(upstream.Close)
	c := new(caracal.Client)

	var rt http.RoundTripper
	require.NotPanics(t, func() { rt = c.Transport(nil) })
	body := &closeRecorder{Reader: strings.NewReader("payload")}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, upstream.URL+"/v1", body)
	require.NoError(t, err)
	_, err = rt.RoundTrip(req)
	require.ErrorIs(t, err, caracal.ErrInvalidRequest)
	assert.Contains(t, err.Error(), "caracal.New")
	assert.True(t, body.closed, "the request body is closed")

	var hc *http.Client
	require.NotPanics(t, func() { hc = c.HTTPClient() })
	resp, err := hc.Get(upstream.URL + "/v1")
	if err == nil {
		resp.Body.Close()
	}
	require.ErrorIs(t, err, caracal.ErrInvalidRequest)
	assert.False(t, sent.Load(), "nothing reaches the upstream")
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (r *closeRecorder) Close() error { r.closed = true; return nil }

// A nil *Client (a New that failed, unchecked) answers Config, Transport and
// HTTPClient as a zero Client does instead of panicking.
func TestNilClientConfigAndTransport(t *testing.T) {
	var c *caracal.Client
	require.NotPanics(t, func() { assert.Equal(t, caracal.Config{}, c.Config()) })
	var rt http.RoundTripper
	require.NotPanics(t, func() { rt = c.Transport(nil) })
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://tickets.internal/v1", nil)
	require.NoError(t, err)
	_, err = rt.RoundTrip(req)
	require.ErrorIs(t, err, caracal.ErrInvalidRequest)
	require.NotPanics(t, func() { _, err = c.HTTPClient().Do(req) })
	require.ErrorIs(t, err, caracal.ErrInvalidRequest)
}

// A zero Client's Transport refuses a request also when it is the base of
// another client's transport that governed the request already: it is not
// a plain base transport that may send it on.
func TestZeroClientTransportUnderAGoverningOneRefuses(t *testing.T) {
	g := startGoverned(t)
	zero := new(caracal.Client)
	hc := &http.Client{Transport: g.c.Transport(zero.Transport(nil), caracal.WithScopes("tickets:read"))}
	resp, err := get(t, hc, g.reader.Context(), g.url(tickets, "/tickets/1"))
	if err == nil {
		resp.Body.Close()
	}
	require.ErrorIs(t, err, caracal.ErrInvalidRequest)
	assert.Contains(t, err.Error(), "caracal.New")
	assert.Zero(t, g.upstream.Load(), "nothing reaches the upstream")
}
