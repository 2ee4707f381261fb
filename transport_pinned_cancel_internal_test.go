package caracal

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A request whose context has already ended sends nothing, fails with the
// cause the context ended with, closes its body, and does not use up the
// context's pinned gateway mandate: the next request under the same agent
// still presents it.
func TestTransportPinnedGatewayTokenKeptByACancelledRequest(t *testing.T) {
	c := unitClient(t)
	rec := &recorder{}
	tr := c.newTransport(rec, nil, (&fakeMint{}).Mint)
	a := unitAgent()
	a.own = false
	tok := "eyJhbGciOiJFUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(`{"use":"gateway"}`)) + ".sig"
	a.token = &tok
	a.presented = new(atomic.Bool)

	cancelled, cancel := context.WithCancelCause(NewContext(context.Background(), a))
	gone := errors.New("the caller gave up")
	cancel(gone)
	body := &closeTracker{Reader: strings.NewReader("x")}
	req, _ := http.NewRequestWithContext(cancelled, http.MethodPost, testUpstream+"/x", body)
	_, err := tr.RoundTrip(req)
	require.ErrorIs(t, err, gone, "the error is the cause the context ended with")
	assert.Empty(t, rec.all(), "nothing was sent")
	assert.True(t, body.closed.Load(), "the body is closed")

	req, _ = http.NewRequestWithContext(NewContext(context.Background(), a), http.MethodGet, testUpstream+"/x", nil)
	_, err = tr.RoundTrip(req)
	require.NoError(t, err)
	require.Len(t, rec.all(), 1)
	assert.Equal(t, "Bearer "+tok, rec.all()[0].Header.Get("Authorization"))
}

// Under another transport of this package, a request the outer one governed
// with the context's pinned mandate is sent on as it is: the inner transport
// neither fails it for presenting the mandate a second time nor replaces it.
func TestTransportPinnedGatewayTokenThroughStackedTransports(t *testing.T) {
	c := unitClient(t)
	rec := &recorder{}
	inner := c.newTransport(rec, nil, (&fakeMint{}).Mint)
	outer := c.newTransport(inner, nil, (&fakeMint{}).Mint)
	a := unitAgent()
	a.own = false
	tok := "eyJhbGciOiJFUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(`{"use":"gateway"}`)) + ".sig"
	a.token = &tok
	a.presented = new(atomic.Bool)

	req, _ := http.NewRequestWithContext(NewContext(context.Background(), a), http.MethodGet, testUpstream+"/x", nil)
	_, err := outer.RoundTrip(req)
	require.NoError(t, err)
	require.Len(t, rec.all(), 1)
	assert.Equal(t, "Bearer "+tok, rec.all()[0].Header.Get("Authorization"))
}
