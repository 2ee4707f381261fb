package caracaltest

import (
	"sync"
	"time"
)

// systemClock is the default Clock: the time package's clock, which inside a
// testing/synctest bubble is the bubble's fake clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// FakeClock is a Clock that moves only when told to. A stack built with
// WithClock(fc) reads all its time from fc: token lifetimes, session TTLs,
// leases, approval holds and fault windows. Advance and Set also run the
// stack's sweepers, so a lease that lapses because the clock moved is
// expired by the time Advance returns, as the real Coordinator's sweeper
// would have done in the meantime.
//
// A FakeClock is safe for concurrent use and may be shared by several stacks.
// It does not move the time package's clock: timers in the code under test
// (retry backoff, heartbeat cadence) keep real time, or the bubble's time
// inside testing/synctest. Code that compares a token's expiry with its own
// clock (the SDK's token cache does) sees the stack's times as skewed by
// the difference, so start a FakeClock at time.Now() unless the test is
// about skew.
type FakeClock struct {
	mu       sync.Mutex
	now      time.Time
	next     int
	sweepers map[int]func()
	// sweep serialises sweeper runs so that two concurrent Advance calls do
	// not sweep the same world at once out of order.
	sweep sync.Mutex
}

// NewFakeClock returns a FakeClock reading t.
func NewFakeClock(t time.Time) *FakeClock {
	return &FakeClock{now: t, sweepers: map[int]func(){}}
}

// Now returns the clock's current time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d, then runs the sweepers of every
// stack using the clock. A negative d panics: time does not go backwards on
// a server, and a test that needs it should use Set.
func (c *FakeClock) Advance(d time.Duration) {
	if d < 0 {
		panic("caracaltest: FakeClock.Advance with a negative duration")
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	c.runSweepers()
}

// Set moves the clock to t (forwards or backwards), then runs the sweepers.
func (c *FakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
	c.runSweepers()
}

// runSweepers runs every registered sweeper, outside c.mu because a sweeper
// takes its world's lock and reads the clock.
func (c *FakeClock) runSweepers() {
	c.sweep.Lock()
	defer c.sweep.Unlock()
	c.mu.Lock()
	fns := make([]func(), 0, len(c.sweepers))
	for i := 0; i < c.next; i++ {
		if fn, ok := c.sweepers[i]; ok {
			fns = append(fns, fn)
		}
	}
	c.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// addSweeper registers fn to run after every Advance or Set and returns a
// function that unregisters it.
func (c *FakeClock) addSweeper(fn func()) (remove func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sweepers == nil {
		c.sweepers = map[int]func(){}
	}
	id := c.next
	c.next++
	c.sweepers[id] = fn
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.sweepers, id)
	}
}

// sweepScheduler is implemented by clocks that drive the stack's sweepers
// themselves (FakeClock); with any other clock the stack sweeps once a second
// of real time.
type sweepScheduler interface {
	addSweeper(fn func()) (remove func())
}
