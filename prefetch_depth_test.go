package caracal

import (
	"context"
	"net/http"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// WithPrefetch's depth defaults to 1: a depth below 1 pools one mandate.
func TestPrefetchDepthBelowOneIsOne(t *testing.T) {
	for _, depth := range []int{0, -3} {
		synctest.Test(t, func(t *testing.T) {
			c, err := NewFromConfig(unitConfig())
			require.NoError(t, err)
			defer c.Close(context.Background())
			f := &fakeMint{}
			tr := c.newTransport(&recorder{}, []TransportOption{WithScopes("tickets:read"), WithPrefetch(depth)}, f.Mint)
			req, _ := http.NewRequestWithContext(NewContext(context.Background(), unitAgent()), http.MethodGet, testUpstream+"/t", nil)
			resp, err := tr.RoundTrip(req)
			require.NoError(t, err)
			_ = resp.Body.Close()
			synctest.Wait()
			n, ok := tr.pool.pooled(readKey())
			require.True(t, ok, "WithPrefetch(%d) prefetches", depth)
			assert.Equal(t, 1, n, "WithPrefetch(%d) keeps the default depth", depth)
		})
	}
}
