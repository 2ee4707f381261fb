package caracal

import (
	"strconv"
	"testing"
)

// BenchmarkRetireAmongOpen measures the local work after a session's
// retire (finding its twins and children among the client's open handles)
// when the client holds many other open sessions.
func BenchmarkRetireAmongOpen(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run("open="+strconv.Itoa(n), func(b *testing.B) {
			c := &Client{open: map[closer]struct{}{}, done: make(chan struct{})}
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
