package caracal

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/apierr"
	"github.com/caracal-go/caracal/internal/stsclient"
)

var readReq = stsclient.MintRequest{Resource: "resource://tickets", Scopes: []string{"tickets:read"}, AgentSessionID: "sess-1", DelegationEdgeID: "edge-1"}

func readKey() poolKey {
	return poolKey{session: "sess-1", delegation: "edge-1", resource: "resource://tickets", scopes: "tickets:read"}
}

// slowMint is a fakeMint that takes d (of bubble time) per mint.
func slowMint(f *fakeMint, d time.Duration) func(context.Context, stsclient.MintRequest) (stsclient.Token, error) {
	return func(ctx context.Context, r stsclient.MintRequest) (stsclient.Token, error) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return stsclient.Token{}, ctx.Err()
		}
		return f.Mint(ctx, r)
	}
}

func agentWithDone(done <-chan struct{}) *Agent {
	a := unitAgent()
	a.done = done
	return a
}

func TestPrefetchSteadyCallerTakesPooledMandates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeMint{}
		p := newPrefetcherFunc(slowMint(f, 5*time.Millisecond), 1)
		defer func() { require.NoError(t, p.Close(context.Background())) }()
		a := agentWithDone(make(chan struct{}))
		ctx := context.Background()

		start := time.Now()
		tok, err := p.take(ctx, a, readReq)
		require.NoError(t, err)
		assert.Equal(t, "mandate-1", tok.Value)
		assert.Equal(t, 5*time.Millisecond, time.Since(start), "the first request mints on its path")

		time.Sleep(5 * time.Millisecond) // the background mint
		synctest.Wait()
		n, ok := p.pooled(readKey())
		require.True(t, ok)
		require.Equal(t, 1, n, "the pool refilled in the background")

		seen := map[string]bool{tok.Value: true}
		for range 10 {
			start = time.Now()
			tok, err = p.take(ctx, a, readReq)
			require.NoError(t, err)
			assert.Zero(t, time.Since(start), "a steady caller does not wait for the STS")
			assert.False(t, seen[tok.Value], "each pooled mandate is used once")
			seen[tok.Value] = true
			time.Sleep(8 * time.Millisecond) // the Gateway leg
		}
		synctest.Wait()
		assert.Equal(t, 12, f.count(), "one inline mint, one refill per take plus the standing one")
	})
}

func TestPrefetchDiscardsMandatesNearExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeMint{life: 100 * time.Second}
		p := newPrefetcherFunc(f.Mint, 1)
		defer func() { require.NoError(t, p.Close(context.Background())) }()
		a := agentWithDone(nil)
		_, err := p.take(context.Background(), a, readReq)
		require.NoError(t, err)
		synctest.Wait()
		require.Equal(t, 2, f.count())

		time.Sleep(56 * time.Second) // the pooled one has 44 s left
		tok, err := p.take(context.Background(), a, readReq)
		require.NoError(t, err)
		// The pooled mandate-2 is discarded, by the taker or by the worker
		// waking at the same instant; either way a fresh one is handed out.
		assert.NotEqual(t, "mandate-2", tok.Value, "a mandate under 45 s of life is never handed out")
		assert.GreaterOrEqual(t, time.Until(tok.ExpiresAt), 45*time.Second)
		synctest.Wait()
		n, _ := p.pooled(readKey())
		assert.Equal(t, 1, n)
	})
}

func TestPrefetchShortEdgeStopsPooling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeMint{life: 60 * time.Second}
		p := newPrefetcherFunc(f.Mint, 1)
		defer func() { require.NoError(t, p.Close(context.Background())) }()
		_, err := p.take(context.Background(), agentWithDone(nil), readReq)
		require.NoError(t, err)
		synctest.Wait()
		_, ok := p.pooled(readKey())
		assert.False(t, ok, "mandates that would expire before use are not pooled")
		assert.Equal(t, 1, f.count(), "no worker mints for a key whose mandates are short-lived")

		// Nor for later requests: each mints once, on its own path.
		for range 3 {
			_, err = p.take(context.Background(), agentWithDone(nil), readReq)
			require.NoError(t, err)
			synctest.Wait()
		}
		assert.Equal(t, 4, f.count())
	})
}

func TestPrefetchPoolDroppedWhenSessionCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeMint{}
		p := newPrefetcherFunc(f.Mint, 2)
		defer func() { require.NoError(t, p.Close(context.Background())) }()
		done := make(chan struct{})
		a := agentWithDone(done)
		_, err := p.take(context.Background(), a, readReq)
		require.NoError(t, err)
		synctest.Wait()
		n, ok := p.pooled(readKey())
		require.True(t, ok)
		require.Equal(t, 2, n, "depth 2")

		close(done)
		synctest.Wait()
		_, ok = p.pooled(readKey())
		assert.False(t, ok)

		// A closed session never gets a new pool.
		_, err = p.take(context.Background(), a, readReq)
		require.NoError(t, err)
		synctest.Wait()
		_, ok = p.pooled(readKey())
		assert.False(t, ok)
	})
}

// failingMint is a fakeMint whose n-th mint (counting from 1) fails with err
// when fail(n).
func failingMint(fail func(n int) bool, err error) *fakeMint {
	var n atomic.Int32
	return &fakeMint{err: func(stsclient.MintRequest) error {
		if fail(int(n.Add(1))) {
			return err
		}
		return nil
	}}
}

// calls is the number of mints asked for, failed ones included.
func (f *fakeMint) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func approvalErr() error {
	return &apierr.ApprovalRequiredError{Err: &apierr.Error{Service: "sts", StatusCode: 401, Code: "interaction_required"}, ApprovalID: "ap-1", State: "pending"}
}

func TestPrefetchNeverPrefetchesApprovalGatedScopes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		approved := false
		f := &fakeMint{err: func(r stsclient.MintRequest) error {
			mu.Lock()
			defer mu.Unlock()
			if r.Scopes[0] == "tickets:delete" && !approved {
				return approvalErr()
			}
			return nil
		}}
		p := newPrefetcherFunc(f.Mint, 1)
		defer func() { require.NoError(t, p.Close(context.Background())) }()
		del := readReq
		del.Scopes = []string{"tickets:delete"}
		key := readKey()
		key.scopes = "tickets:delete"

		_, err := p.take(context.Background(), agentWithDone(nil), del)
		require.ErrorIs(t, err, apierr.ErrApprovalRequired)
		synctest.Wait()

		mu.Lock()
		approved = true
		mu.Unlock()
		for range 3 {
			_, err = p.take(context.Background(), agentWithDone(nil), del)
			require.NoError(t, err)
		}
		synctest.Wait()
		_, ok := p.pooled(key)
		assert.False(t, ok)
		assert.Equal(t, 4, f.calls(), "every mint of a gated scope is on the request path")
	})
}

func TestPrefetchWorkerStopsOnApproval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := failingMint(func(n int) bool { return n > 1 }, approvalErr())
		p := newPrefetcherFunc(f.Mint, 1)
		defer func() { require.NoError(t, p.Close(context.Background())) }()
		_, err := p.take(context.Background(), agentWithDone(nil), readReq)
		require.NoError(t, err)
		synctest.Wait()
		_, ok := p.pooled(readKey())
		assert.False(t, ok)
		time.Sleep(time.Hour)
		assert.Equal(t, 2, f.calls(), "no retry after a hold")
	})
}

func TestPrefetchBacksOffOnErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := failingMint(func(n int) bool { return n > 1 }, &apierr.Error{Service: "sts", StatusCode: 503, Code: "sts_unavailable"})
		p := newPrefetcherFunc(f.Mint, 1)
		defer func() { require.NoError(t, p.Close(context.Background())) }()
		_, err := p.take(context.Background(), agentWithDone(nil), readReq)
		require.NoError(t, err)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		// Background attempts at 0, 1, 3 and 7 s.
		assert.Equal(t, 5, f.calls())
	})
}

// TestPrefetchFailingWorkerStops: a worker whose mints keep failing
// stops instead of retrying for the rest of the client's life: at once on a
// refusal, and once the pool idles on a transient failure.
func TestPrefetchFailingWorkerStops(t *testing.T) {
	for name, failure := range map[string]error{
		"refused":   &apierr.Error{Service: "sts", StatusCode: 403, Code: "access_denied"},
		"transient": &apierr.Error{Service: "sts", StatusCode: 503, Code: "sts_unavailable"},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := failingMint(func(n int) bool { return n > 1 }, failure)
				p := newPrefetcherFunc(f.Mint, 1)
				defer func() { require.NoError(t, p.Close(context.Background())) }()
				_, err := p.take(context.Background(), agentWithDone(nil), readReq)
				require.NoError(t, err)
				time.Sleep(prefetchIdle + prefetchBackoffMax)
				synctest.Wait()
				_, ok := p.pooled(readKey())
				assert.False(t, ok)
				n := f.calls()
				if name == "refused" {
					assert.Equal(t, 2, n, "no background retry after a refusal")
				}
				time.Sleep(24 * time.Hour)
				assert.Equal(t, n, f.calls(), "the worker stopped")
			})
		})
	}
}

func TestPrefetchIdlePoolDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeMint{}
		p := newPrefetcherFunc(f.Mint, 1)
		defer func() { require.NoError(t, p.Close(context.Background())) }()
		_, err := p.take(context.Background(), agentWithDone(nil), readReq)
		require.NoError(t, err)
		time.Sleep(prefetchIdle + time.Second)
		synctest.Wait()
		_, ok := p.pooled(readKey())
		assert.False(t, ok)
	})
}

func TestPrefetchConcurrentTakesAreSingleUse(t *testing.T) {
	f := &fakeMint{}
	p := newPrefetcherFunc(f.Mint, 4)
	defer func() { require.NoError(t, p.Close(context.Background())) }()
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				tok, err := p.take(context.Background(), agentWithDone(nil), readReq)
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				assert.False(t, seen[tok.Value], tok.Value)
				seen[tok.Value] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	assert.Len(t, seen, 400)
}

func TestPrefetchStopsWithTheClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := NewFromConfig(unitConfig())
		require.NoError(t, err)
		f := &fakeMint{}
		rec := &recorder{}
		tr := c.newTransport(rec, []TransportOption{WithScopes("tickets:read"), WithPrefetch(1)}, f.Mint)
		require.NotNil(t, tr.pool)

		req, _ := http.NewRequestWithContext(NewContext(context.Background(), unitAgent()), http.MethodGet, testUpstream+"/t", strings.NewReader("x"))
		resp, err := tr.RoundTrip(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		synctest.Wait()
		_, ok := tr.pool.pooled(readKey())
		require.True(t, ok)

		require.NoError(t, c.Close(context.Background()))
		synctest.Wait()
		_, ok = tr.pool.pooled(readKey())
		assert.False(t, ok)
		// The bubble ends only if the worker exited.
	})
}

// TestPrefetchDroppedTransportUnregisters: a prefetching transport that is
// dropped without closing the client stops its workers and no longer stays
// registered with the client.
// A transport dropped while its client is open has its prefetcher stopped
// and unregistered. The runtime's cleanup runs outside the synctest bubble
// the workers run in, so it must touch none of their channels (that would
// be fatal); the worker leaves at its next wake.
func TestPrefetchDroppedTransportUnregisters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := unitClient(t)
		tracked := func() int {
			c.mu.Lock()
			defer c.mu.Unlock()
			return len(c.open)
		}
		f := &fakeMint{}
		var p *prefetcher
		func() {
			tr := c.newTransport(&recorder{}, []TransportOption{WithScopes("tickets:read"), WithPrefetch(1)}, f.Mint)
			p = tr.pool
			req, _ := http.NewRequestWithContext(NewContext(context.Background(), unitAgent()), http.MethodGet, testUpstream+"/t", nil)
			resp, err := tr.RoundTrip(req)
			require.NoError(t, err)
			_ = resp.Body.Close()
		}()
		synctest.Wait() // the worker has refilled the pool and waits
		require.Equal(t, 1, tracked())
		require.Equal(t, 2, f.count())

		abandoned := func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.closed
		}
		for i := 0; i < 1000 && !abandoned(); i++ {
			runtime.GC() // the cleanup runs on the runtime's own goroutine
			runtime.Gosched()
		}
		require.True(t, abandoned(), "the dropped transport's cleanup ran")
		time.Sleep(prefetchIdle)
		synctest.Wait()
		assert.Zero(t, tracked(), "the dropped transport's prefetcher is unregistered")
		assert.Equal(t, 2, f.count(), "and mints no more")
	})
}

func TestPrefetchWaitsForTheRefillInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeMint{}
		p := newPrefetcherFunc(slowMint(f, 5*time.Millisecond), 1)
		defer func() { require.NoError(t, p.Close(context.Background())) }()
		a := agentWithDone(nil)
		_, err := p.take(context.Background(), a, readReq)
		require.NoError(t, err)

		time.Sleep(3 * time.Millisecond) // the refill has 2 ms to go
		start := time.Now()
		tok, err := p.take(context.Background(), a, readReq)
		require.NoError(t, err)
		assert.Equal(t, 2*time.Millisecond, time.Since(start))
		assert.Equal(t, "mandate-2", tok.Value, "the refill's mandate, not a new mint")
		assert.Equal(t, 2, f.count())
	})
}

func TestPrefetchFailedRefillFallsBackToMinting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := failingMint(func(n int) bool { return n == 2 }, &apierr.Error{Service: "sts", StatusCode: 503, Code: "sts_unavailable"})
		p := newPrefetcherFunc(slowMint(f, 5*time.Millisecond), 1)
		defer func() { require.NoError(t, p.Close(context.Background())) }()
		a := agentWithDone(nil)
		_, err := p.take(context.Background(), a, readReq)
		require.NoError(t, err)
		time.Sleep(time.Millisecond)
		start := time.Now()
		tok, err := p.take(context.Background(), a, readReq)
		require.NoError(t, err)
		assert.Equal(t, 4*time.Millisecond+5*time.Millisecond, time.Since(start), "waited for the failed refill, then minted")
		assert.Equal(t, "mandate-2", tok.Value)
	})
}

func TestPrefetchGatingStopsOtherSessionsWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		gated := false
		f := &fakeMint{err: func(stsclient.MintRequest) error {
			mu.Lock()
			defer mu.Unlock()
			if gated {
				return approvalErr()
			}
			return nil
		}}
		p := newPrefetcherFunc(f.Mint, 1)
		other := readReq
		other.AgentSessionID = "sess-2"
		_, err := p.take(context.Background(), agentWithDone(nil), readReq)
		require.NoError(t, err)
		_, err = p.take(context.Background(), agentWithDone(nil), other)
		require.NoError(t, err)
		synctest.Wait()

		// The policy now gates the scope: a hold drops every pool for it,
		// and their workers exit at once.
		mu.Lock()
		gated = true
		mu.Unlock()
		// Drain sess-1's pooled mandate so that its next request mints.
		_, err = p.take(context.Background(), agentWithDone(nil), readReq)
		require.NoError(t, err)
		synctest.Wait() // its worker's refill hit the hold
		_, ok := p.pooled(readKey())
		assert.False(t, ok)
		k2 := readKey()
		k2.session = "sess-2"
		_, ok = p.pooled(k2)
		assert.False(t, ok, "the other session's pool for the gated scopes is gone too")
		p.mu.Lock()
		assert.Empty(t, p.pools)
		p.mu.Unlock()
		start := time.Now()
		p.wg.Wait() // without a wake-up, this would wait for the 1 min idle timer
		assert.Zero(t, time.Since(start), "the dropped pools' workers exited at once")
		p.closeNow()
	})
}

// A depth past the maximum keeps the maximum: a large depth would spend the
// STS mint budget on mandates nobody may take.
func TestPrefetchDepthIsCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := NewFromConfig(unitConfig())
		require.NoError(t, err)
		defer c.Close(context.Background())
		f := &fakeMint{}
		tr := c.newTransport(&recorder{}, []TransportOption{WithScopes("tickets:read"), WithPrefetch(1000)}, f.Mint)
		req, _ := http.NewRequestWithContext(NewContext(context.Background(), unitAgent()), http.MethodGet, testUpstream+"/t", nil)
		resp, err := tr.RoundTrip(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		synctest.Wait()
		n, ok := tr.pool.pooled(readKey())
		require.True(t, ok)
		assert.Equal(t, 16, n, "the documented maximum")
	})
}
