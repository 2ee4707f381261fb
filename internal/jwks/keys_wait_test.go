package jwks

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

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

// TestKeysAgedKeyDoesNotWaitForRefetch: while one caller refetches an aged
// set, the others verify with the aged key instead of queueing behind the
// fetch.
func TestKeysAgedKeyDoesNotWaitForRefetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, Expect{})
		ctx := context.Background()
		refetched, release := heldRefetch(t, f, DefaultMaxAge, false)

		got := make(chan error, 1)
		go func() {
			_, err := f.keys.Key(ctx, "kid-1")
			got <- err
		}()
		synctest.Wait() // the refetch is still held
		select {
		case err := <-got:
			require.NoError(t, err)
		default:
			t.Fatal("a lookup of an aged key waited for the refetch in flight")
		}
		close(release)
		require.NoError(t, <-refetched)
		assert.Equal(t, int32(2), f.srv.fetches.Load())
	})
}

// TestKeysConcurrentColdStartFetchesOnce holds the first fetch until every
// caller is waiting, so that they all overlap it.
func TestKeysConcurrentColdStartFetchesOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, Expect{})
		release := make(chan struct{})
		f.keys.hc = handlerClient(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-release
			f.srv.ServeHTTP(w, r)
		}))
		tok := f.s.sign(t, validClaims(f.clock.Now()))
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				_, err := f.v.Verify(context.Background(), tok)
				assert.NoError(t, err)
			})
		}
		synctest.Wait() // every caller is blocked in or behind the fetch
		close(release)
		wg.Wait()
		assert.Equal(t, int32(1), f.srv.fetches.Load())
	})
}

// TestKeysKeyPastGraceWaitsForRefetch: a key past its stale grace is not
// handed out while another caller refetches; the lookup waits for that
// fetch and, when it fails, reports the failure.
func TestKeysKeyPastGraceWaitsForRefetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, Expect{})
		ctx := context.Background()
		refetched, release := heldRefetch(t, f, DefaultMaxAge+staleGrace, true)

		got := make(chan error, 1)
		go func() {
			_, err := f.keys.Key(ctx, "kid-1")
			got <- err
		}()
		synctest.Wait()
		select {
		case err := <-got:
			t.Fatalf("a key past its stale grace was handed out during a refetch (err %v)", err)
		default:
		}
		close(release)
		require.ErrorIs(t, <-refetched, ErrKeysUnavailable)
		require.ErrorIs(t, <-got, ErrKeysUnavailable)
		assert.Equal(t, int32(2), f.srv.fetches.Load(), "the waiter does not fetch again in the cooldown")
	})
}

// heldRefetch fetches f's key set, then (with the key server failing from
// then on if failing) ages it by age and starts a lookup whose refetch the
// key server holds until release is closed; the lookup's error comes on
// refetched.
func heldRefetch(t *testing.T, f *fixture, age time.Duration, failing bool) (refetched <-chan error, release chan struct{}) {
	t.Helper()
	ctx := context.Background()
	_, err := f.keys.Key(ctx, "kid-1")
	require.NoError(t, err)

	if failing {
		f.srv.set(true)
	}
	entered := make(chan struct{})
	release = make(chan struct{})
	f.keys.hc = handlerClient(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		f.srv.ServeHTTP(w, r)
	}))
	f.clock.Add(age)
	errs := make(chan error, 1)
	go func() {
		_, err := f.keys.Key(ctx, "kid-1")
		errs <- err
	}()
	<-entered
	return errs, release
}
