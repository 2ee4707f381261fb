package stsclient

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Callers served from the cache read it while others invalidate it and
// exchange again: each gets a token the STS issued, and each invalidation
// costs at most one exchange.
func TestLifecycleCacheUnderConcurrentInvalidation(t *testing.T) {
	var calls atomic.Int64
	hc := gatedSTS(&calls, closedChan())
	c := New(Config{BaseURL: "http://sts.invalid", ClientSecret: secret, Resources: []string{"r"}, HTTPClient: hc})
	const readers, reads, invalidations = 8, 200, 20
	var wg sync.WaitGroup
	for range readers {
		wg.Go(func() {
			for range reads {
				tok, err := c.Lifecycle(t.Context())
				if !assert.NoError(t, err) || !assert.True(t, strings.HasPrefix(tok.Value, "tok-"), tok.Value) {
					return
				}
				assert.Equal(t, "Bearer "+tok.Value, tok.Bearer())
			}
		})
	}
	wg.Go(func() {
		var dropped string
		for range invalidations {
			tok, err := c.Lifecycle(t.Context())
			if !assert.NoError(t, err) || !assert.NotEqual(t, dropped, tok.Value, "an invalidated token is not served again") {
				return
			}
			c.Invalidate(tok.Value)
			dropped = tok.Value
		}
	})
	wg.Wait()
	tok, err := c.Lifecycle(t.Context())
	require.NoError(t, err)
	assert.Equal(t, int64(invalidations+1), calls.Load(), "one exchange per invalidation")
	assert.Equal(t, fmt.Sprintf("tok-%d", calls.Load()), tok.Value, "the cache holds the last token issued")
}

func closedChan() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
