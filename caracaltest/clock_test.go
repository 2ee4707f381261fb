package caracaltest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestFakeClock(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fc := NewFakeClock(t0)
	assert.Equal(t, t0, fc.Now())
	runs := 0
	remove := fc.addSweeper(func() {
		runs++
		assert.Equal(t, t0.Add(time.Minute), fc.Now(), "sweepers see the new time")
	})
	fc.Advance(time.Minute)
	assert.Equal(t, 1, runs)
	remove()
	fc.Set(t0)
	assert.Equal(t, t0, fc.Now())
	assert.Equal(t, 1, runs, "a removed sweeper no longer runs")
	assert.Panics(t, func() { fc.Advance(-time.Second) })
}
