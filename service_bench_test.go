package caracal_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// BenchmarkServices10k runs 10,000 auto-renewing services in one process
// against an in-memory caracaltest stack for two lease periods and reports
// what each service costs: SDK heap and stack bytes, goroutines, and
// Coordinator requests per lease. It runs in real time (about two and a half
// minutes per iteration: the lease is one minute, so that the in-process
// Coordinator, which serialises every request on one lock, keeps up with
// 10,000 services); use -benchtime=1x.
func BenchmarkServices10k(b *testing.B) {
	const (
		n        = 10_000
		leaseLen = time.Minute
		leases   = 2
	)
	st, err := caracaltest.New(caracaltest.InMemory(), caracaltest.WithLease(leaseLen),
		caracaltest.WithLimits(caracaltest.Limits{SessionsPerZone: 2 * n, SessionsPerApp: 2 * n, ReceiptsPerScope: 4 * n}))
	require.NoError(b, err)
	defer st.Close()
	ctx := context.Background()

	var perHeap, perGoroutines, perLease, perTokens float64 // perTokens: all services together
	b.ReportAllocs()
	for b.Loop() {
		c, err := st.NewClient()
		require.NoError(b, err)
		svcs := make([]*caracal.Service, n)
		t0 := time.Now()
		var wg sync.WaitGroup
		next := make(chan int)
		for range 8 {
			wg.Go(func() {
				for i := range next {
					s, err := c.SpawnService(ctx, caracal.HeartbeatAuto())
					if err != nil {
						b.Error(err)
						continue
					}
					svcs[i] = s
				}
			})
		}
		for i := range n {
			next <- i
		}
		close(next)
		wg.Wait()
		b.Logf("spawned %d services in %v", n, time.Since(t0))
		if b.Failed() {
			b.FailNow()
		}

		st.ResetRecord()
		time.Sleep(leases * leaseLen)
		hb, tok := st.Count(caracaltest.RouteHeartbeat), st.Count(caracaltest.RouteToken)
		for _, s := range svcs {
			require.NoError(b, s.Err())
		}

		st.ResetRecord()
		heapLive, gLive := memInUse()
		require.NoError(b, c.Close(ctx))
		st.ResetRecord()
		svcs = nil
		heapClosed, gClosed := memInUse()

		perHeap = float64(heapLive-heapClosed) / n
		perGoroutines = float64(gLive-gClosed) / n
		perLease = float64(hb) / n / leases
		perTokens = float64(tok) / leases
	}
	b.ReportMetric(perHeap, "B/service")
	b.ReportMetric(perGoroutines, "goroutines/service")
	b.ReportMetric(perLease, "heartbeats/service/lease")
	b.ReportMetric(perTokens, "token-requests/lease")
}

// memInUse returns the heap and stack bytes in use after a collection, and
// the goroutine count.
func memInUse() (uint64, int) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse, runtime.NumGoroutine()
}
