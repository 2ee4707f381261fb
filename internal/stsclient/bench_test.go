package stsclient

import (
	"sync/atomic"
	"testing"
)

// BenchmarkLifecycleCached is Lifecycle served from the cache, as Headers
// calls it for every request of a session the client spawned, from one
// goroutine and from every P at once.
func BenchmarkLifecycleCached(b *testing.B) {
	var calls atomic.Int64
	c := New(Config{BaseURL: "http://sts.invalid", ClientSecret: secret, Resources: []string{"r"}, HTTPClient: gatedSTS(&calls, closedChan())})
	if _, err := c.Lifecycle(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Lifecycle(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Lifecycle(b.Context()); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	if calls.Load() != 1 {
		b.Fatalf("%d exchanges, want 1", calls.Load())
	}
}
