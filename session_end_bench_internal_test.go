package caracal

import (
	"context"
	"strconv"
	"testing"
)

// BenchmarkRetireAmongOpen measures the local work after a session's
// retire (finding its twins and children among the client's open handles)
// when the client holds many other open sessions.
func BenchmarkRetireAmongOpen(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run("open="+strconv.Itoa(n), func(b *testing.B) {
			c := &Client{open: map[closer]struct{}{}, life: context.Background()}
			root := &Agent{sessionID: "root"}
			for i := range n {
				a := &Agent{sessionID: "s" + strconv.Itoa(i), up: root}
				if err := c.track(&Session{id: a.sessionID, agent: a, closed: make(chan struct{})}); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				c.endRetired("s0-leaf", nil)
			}
		})
	}
}

// BenchmarkServiceHandAmongOpen measures the local work of handing out a
// service handle (looking for this client's other handles on the same
// session, to fence the older ones) when the client holds many other open
// services.
func BenchmarkServiceHandAmongOpen(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run("open="+strconv.Itoa(n), func(b *testing.B) {
			c := &Client{open: map[closer]struct{}{}, life: context.Background()}
			for i := range n {
				s := &Service{id: "svc" + strconv.Itoa(i), generation: 1, done: make(chan struct{}), closed: make(chan struct{})}
				if err := c.track(s); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				c.fenceStale("svc0")
			}
		})
	}
}
