package caracal_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
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

// An agent bound by the middleware holds the bearer it was called with.
// Kept in an unexported field of a caller's struct, where fmt cannot call
// its Format, and printed with any verb, it does not show that bearer.
func TestInboundAgentInAStructHidesItsBearer(t *testing.T) {
	s := newMWSigner(t, "kid-1")
	var fetches atomic.Int32
	c := mwClient(t, jwksClient(s, &fetches))
	mw, err := c.Middleware(caracal.VerifyTokens(mwResource))
	require.NoError(t, err)
	var got seen
	token := s.sign(t, resourceClaims())
	rec := serve(mw(got.handler()), http.Header{"Authorization": {"Bearer " + token}})
	require.Equal(t, http.StatusNoContent, rec.Code, rec.Body.String())
	a := got.agent.Load()
	require.NotNil(t, a)
	sig := token[strings.LastIndexByte(token, '.')+1:]
	values := map[string]any{
		"agent":               a,
		"pointer in a struct": struct{ a *caracal.Agent }{a},
		"value in a struct":   struct{ a caracal.Agent }{*a},
	}
	for name, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
			assert.NotContains(t, fmt.Sprintf(verb, v), sig, "%s printed with %s", name, verb)
		}
	}
}
