package caracal_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// The context of the request the transport sends to the Gateway does not
// show the mandate when printed, as a base transport that logs requests
// with their Authorization header redacted may print it.
func TestGatewayRequestContextDoesNotShowTheMandate(t *testing.T) {
	g := startGoverned(t)
	inner := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(inner.CloseIdleConnections)
	var auth, shown string
	base := rtFunc(func(r *http.Request) (*http.Response, error) {
		auth, shown = r.Header.Get("Authorization"), fmt.Sprintf("%v %+v %#v %s", r.Context(), r.Context(), r.Context(), r.Context())
		return inner.RoundTrip(r)
	})
	hc := &http.Client{Transport: g.c.Transport(base, caracal.WithScopes("tickets:read"))}
	resp, err := get(t, hc, g.reader.Context(), g.url(tickets, "/tickets/1"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	mandate, ok := strings.CutPrefix(auth, "Bearer ")
	require.True(t, ok && mandate != "", "the Gateway request carried a mandate")
	assert.NotContains(t, shown, mandate)
}
