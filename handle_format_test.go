package caracal_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// Printing what the client hands out (a session, a service, a transport),
// with any verb, never shows the client secret: fmt reaches a value's
// unexported fields by reflection, one pointer deep for %s and %q, and the
// client's configuration must not be there to find.
func TestHandlesFormatHideClientSecret(t *testing.T) {
	st := caracaltest.Start(t)
	c, err := st.NewClient()
	require.NoError(t, err)
	defer c.Close(t.Context())
	secret := st.Application().Secret

	s, err := c.Spawn(t.Context())
	require.NoError(t, err)
	svc, err := c.SpawnService(t.Context())
	require.NoError(t, err)
	values := map[string]any{
		"session": s,
		"service": svc,
		// An inert base: fmt would otherwise walk into a live
		// http.Transport's fields, racing with its connections.
		"transport":   c.Transport(inertTransport{}, caracal.WithScopes("tickets:read")),
		"in a struct": struct{ c *caracal.Client }{c},
	}
	for name, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
			assert.NotContains(t, fmt.Sprintf(verb, v), secret, "%s printed with %s", name, verb)
		}
	}
}

type inertTransport struct{}

func (inertTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("not sent")
}
