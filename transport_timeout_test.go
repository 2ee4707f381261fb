package caracal_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// isTimeout is how callers of http.Client tell a timeout from other
// failures: Client.Do documents that the *url.Error it returns reports
// Timeout when the request timed out.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A governed request cut short by a deadline while its mandate is minted
// fails as a timeout, as net/http's own errors for a request past its
// deadline do, so that callers (and http.Client) can tell it from a refusal.
func TestGovernedDeadlineDuringMintIsATimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := startGoverned(t, caracaltest.InMemory())
		g.st.Inject(caracaltest.RouteToken, caracaltest.Fault{Delay: time.Minute})
		t.Cleanup(g.st.ClearFaults)
		hc := &http.Client{Transport: g.c.Transport(nil, caracal.WithScopes("tickets:read"))}
		ctx, cancel := context.WithTimeout(g.reader.Context(), 100*time.Millisecond)
		defer cancel()
		_, err := get(t, hc, ctx, g.url(tickets, "/tickets/1"))
		require.Error(t, err)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.True(t, isTimeout(err), "the request's deadline: %v", err)

		// With Client.Timeout the client's own timer and the request's
		// deadline race; either way the error is a timeout.
		hc.Timeout = 100 * time.Millisecond
		for range 5 {
			_, err = get(t, hc, g.reader.Context(), g.url(tickets, "/tickets/1"))
			require.Error(t, err)
			assert.True(t, isTimeout(err), "Client.Timeout: %v", err)
		}
		assert.Zero(t, g.upstream.Load(), "nothing reached the resource")
		g.st.ClearFaults()
		require.NoError(t, g.c.Close(context.Background()))
	})
}

// A mint that fails with no deadline passing (the STS drops every
// connection) is not a timeout: a caller that retries timeouts must not
// take an STS outage for one.
func TestGovernedMintFailureIsNotATimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := startGoverned(t, caracaltest.InMemory())
		g.st.Inject(caracaltest.RouteToken, caracaltest.Fault{Drop: true})
		defer g.st.ClearFaults()
		hc := &http.Client{Transport: g.c.Transport(nil, caracal.WithScopes("tickets:read"))}
		_, err := get(t, hc, g.reader.Context(), g.url(tickets, "/tickets/1"))
		require.ErrorIs(t, err, caracal.ErrUnavailable)
		assert.False(t, isTimeout(err), "an STS outage: %v", err)
		assert.Zero(t, g.upstream.Load(), "nothing reached the resource")
	})
}

// A mint that fails because the connection to the STS timed out (a dial
// timeout, which is no context deadline) is a timeout too, as the same
// failure of the base transport is.
func TestGovernedMintConnectionTimeoutIsATimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory(), caracaltest.WithResource(caracaltest.Resource{Identifier: tickets,
			Scopes: []string{"tickets:read"}, Upstream: http.NotFoundHandler()}))
		var stsDown atomic.Bool
		mem := st.HTTPClient().Transport
		hc := &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
			if stsDown.Load() && r.URL.Path == "/oauth/2/token" {
				return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
			}
			return mem.RoundTrip(r)
		})}
		c, _ := newClient(t, st, caracal.WithHTTPClient(hc))
		root, err := c.Spawn(t.Context())
		require.NoError(t, err)
		reader, err := c.Spawn(root.Context(),
			caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, tickets, caracal.Constraints{}, 10*time.Minute)))
		require.NoError(t, err)

		stsDown.Store(true)
		gc := &http.Client{Transport: c.Transport(nil, caracal.WithScopes("tickets:read"))}
		_, err = get(t, gc, reader.Context(), st.UpstreamURL(tickets)+"/tickets/1")
		stsDown.Store(false)
		require.ErrorIs(t, err, caracal.ErrUnavailable)
		assert.True(t, isTimeout(err), "a dial timeout at the STS: %v", err)
	})
}
