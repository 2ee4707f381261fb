package caracal

import (
	"context"
	"encoding/base64"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A request whose context has already ended sends nothing and does not use
// up the context's pinned gateway mandate: the next request under the
// same agent still presents it.
func TestTransportPinnedGatewayTokenKeptByACancelledRequest(t *testing.T) {
	c := unitClient(t)
	rec := &recorder{}
	tr := c.newTransport(rec, nil, (&fakeMint{}).Mint)
	a := unitAgent()
	a.own = false
	tok := "eyJhbGciOiJFUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(`{"use":"gateway"}`)) + ".sig"
	a.token = &tok
	a.presented = new(atomic.Bool)

	cancelled, cancel := context.WithCancel(NewContext(context.Background(), a))
	cancel()
	req, _ := http.NewRequestWithContext(cancelled, http.MethodGet, testUpstream+"/x", nil)
	_, err := tr.RoundTrip(req)
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, rec.all(), "nothing was sent")

	req, _ = http.NewRequestWithContext(NewContext(context.Background(), a), http.MethodGet, testUpstream+"/x", nil)
	_, err = tr.RoundTrip(req)
	require.NoError(t, err)
	require.Len(t, rec.all(), 1)
	assert.Equal(t, "Bearer "+tok, rec.all()[0].Header.Get("Authorization"))
}
