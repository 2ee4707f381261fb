package jwks

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A lookup queued behind a cold-start fetch gives up when its request ends,
// instead of waiting out the fetch timeout.
func TestKeysWaiterGivesUpWithItsRequest(t *testing.T) {
	f := newFixture(t, Expect{})
	entered, release := make(chan struct{}), make(chan struct{})
	f.keys.hc = handlerClient(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		f.srv.ServeHTTP(w, r)
	}))
	first := make(chan error, 1)
	go func() {
		_, err := f.keys.Key(context.Background(), "kid-1")
		first <- err
	}()
	<-entered

	gone := errors.New("client hung up")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(gone)
	_, err := f.keys.Key(ctx, "kid-1")
	require.ErrorIs(t, err, gone)
	assert.NotErrorIs(t, err, ErrKeysUnavailable, "a caller giving up says nothing about the key source")

	close(release)
	require.NoError(t, <-first)
	_, err = f.keys.Key(context.Background(), "kid-1")
	require.NoError(t, err)
	assert.Equal(t, int32(1), f.srv.fetches.Load())
}
