package jwks_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/caracaltest"
	"github.com/caracal-go/caracal/internal/jwks"
)

// TestKeysRefetchOutlivesTheCallersRequest: the refetch of an aged key set
// is not tied to the request that started it. A client that hangs up does
// not fail the fetch, so the cooldown after a failure does not begin and a
// key rotated in meanwhile is found at once.
func TestKeysRefetchOutlivesTheCallersRequest(t *testing.T) {
	st := caracaltest.Start(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	keys := jwks.NewKeys(jwks.KeysConfig{
		URL:        st.STSURL() + "/.well-known/jwks.json?zone_id=" + st.Zone(),
		HTTPClient: st.HTTPClient(),
		Now:        clock,
	})
	old := st.RotateSigningKey()
	_, err := keys.Key(context.Background(), old)
	require.NoError(t, err)

	mu.Lock()
	now = now.Add(jwks.DefaultMaxAge)
	mu.Unlock()
	rotated := st.RotateSigningKey()
	gone, hangUp := context.WithCancel(context.Background())
	hangUp()
	_, err = keys.Key(gone, old) // aged: this lookup refetches
	require.NoError(t, err)
	assert.False(t, keys.Failing(), "the refetch succeeded")

	_, err = keys.Key(context.Background(), rotated)
	require.NoError(t, err, "the refetched set holds the rotated key")
	assert.Equal(t, 2, st.Count(caracaltest.RouteJWKS))
}
