package caracal_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

func benchStack(b *testing.B) (*caracaltest.Stack, *caracal.Client) {
	b.Helper()
	st := caracaltest.Start(b)
	c, _ := newClient(b, st)
	return st, c
}

// stsPer1000 reports the STS exchanges per 1,000 spawns of the measured loop.
func stsPer1000(b *testing.B, st *caracaltest.Stack, spawns int) {
	b.ReportMetric(float64(st.Count(caracaltest.RouteToken))*1000/float64(spawns), "sts-calls/1000spawns")
}

func BenchmarkHeaders(b *testing.B) {
	_, c := benchStack(b)
	ctx := context.Background()
	s, err := c.Spawn(ctx, caracal.WithLabels("dispatcher"))
	if err != nil {
		b.Fatal(err)
	}
	sctx := s.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Headers(sctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSpawnClose(b *testing.B) {
	st, c := benchStack(b)
	ctx := context.Background()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		s, err := c.Spawn(ctx, caracal.WithLabels("reader"))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(ctx); err != nil {
			b.Fatal(err)
		}
		n++
	}
	stsPer1000(b, st, n)
}

func BenchmarkSpawnNarrowed(b *testing.B) {
	st, c := benchStack(b)
	ctx := context.Background()
	root, err := c.Spawn(ctx, caracal.WithLabels("dispatcher"))
	if err != nil {
		b.Fatal(err)
	}
	grant := caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, 5*time.Minute))
	b.ReportAllocs()
	n := 1
	for b.Loop() {
		s, err := c.Spawn(root.Context(), caracal.WithLabels("reader"), grant)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(ctx); err != nil {
			b.Fatal(err)
		}
		n++
	}
	stsPer1000(b, st, n)
}

// BenchmarkHeadersParallel is BenchmarkHeaders with every P asking at once
// for the same session, as the handlers of a service do.
func BenchmarkHeadersParallel(b *testing.B) {
	_, c := benchStack(b)
	s, err := c.Spawn(context.Background(), caracal.WithLabels("dispatcher"))
	if err != nil {
		b.Fatal(err)
	}
	sctx := s.Context()
	if _, err := c.Headers(sctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Headers(sctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSpawnCloseParallel is BenchmarkSpawnClose with every P spawning
// and closing sessions at once on one client, as concurrent jobs of a
// service do. The in-process Coordinator answers one call at a time, so
// this shows that the client adds no queue of its own, not how far a real
// Coordinator scales.
func BenchmarkSpawnCloseParallel(b *testing.B) {
	st, c := benchStack(b)
	ctx := context.Background()
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s, err := c.Spawn(ctx, caracal.WithLabels("reader"))
			if err != nil {
				b.Error(err)
				return
			}
			if err := s.Close(ctx); err != nil {
				b.Error(err)
				return
			}
			n.Add(1)
		}
	})
	stsPer1000(b, st, int(n.Load()))
}
