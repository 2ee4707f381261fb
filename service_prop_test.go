package caracal_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
	"github.com/caracal-go/caracal/internal/lease"
)

// TestServiceLeaseProperties runs random schedules of heartbeat faults,
// suspensions, takeovers, manual heartbeats and closes against service
// handles, over virtual time, and checks after every event what Service,
// Heartbeat, Close and AttachService document:
//
//  1. A handle that got an answer ending its lease (fenced, gone,
//     suspended) has ended; a client holds at most one live handle per
//     session (its own AttachService ends the older one at once); a handle
//     of another client fenced by a takeover may look live only until its
//     next heartbeat is answered or its local deadline passes.
//  2. A live handle's local deadline has not passed, it is no later than
//     the Coordinator's deadline for the current holder, and a handle that
//     expired ended at its deadline, not later. A background renewal does
//     not let a lease lapse while the Coordinator answers.
//  3. Once Close or Client.Close returned, no heartbeat of that handle is
//     sent or reaches the Coordinator.
//  4. Once every handle and client is closed, no goroutine of a Service or
//     Client is left (and the bubble fails on any goroutine that is).
//  5. A background renewal never comes sooner than the cadence rule after a
//     success, nor sooner than lease.MinRetry (or the deadline) after a
//     failure.
//
// The seeds are fixed; CARACAL_LEASE_SEEDS=n runs n of them instead.
func TestServiceLeaseProperties(t *testing.T) {
	n := 40
	if v := os.Getenv("CARACAL_LEASE_SEEDS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatalf("CARACAL_LEASE_SEEDS=%q: %v", v, err)
		}
	}
	for seed := uint64(1); seed <= uint64(n); seed++ {
		synctest.Test(t, func(t *testing.T) { runLeaseSchedule(t, seed) })
		if t.Failed() {
			return
		}
	}
}

// skews are the offsets of the Coordinator's clock from the client's that a
// schedule starts with and jumps between.
var skews = []time.Duration{0, 0, 400 * time.Millisecond, -700 * time.Millisecond, 3 * time.Minute, -2 * time.Minute}

func runLeaseSchedule(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x1ea5e))
	leases := []time.Duration{120 * time.Second, 30 * time.Second, 9 * time.Second, 2500 * time.Millisecond}
	w := &propWorld{t: t, seed: seed, rng: rng, ls: leases[rng.IntN(len(leases))],
		clk: &skewClock{}, byGen: map[string]map[int64]*propHandle{}}
	w.skew(skews[rng.IntN(len(skews))])
	w.st = caracaltest.Start(t, caracaltest.InMemory(), caracaltest.WithClock(w.clk), caracaltest.WithLease(w.ls))
	w.logf("seed %d: clock offset %v, lease %v", seed, w.off, w.ls)
	w.newClient()
	w.newClient()
	w.spawn()
	if len(w.sessions) == 0 {
		w.failf("the first service did not start")
	}
	for step := 0; step < 40 && len(w.liveClients()) > 0; step++ {
		w.event()
		synctest.Wait()
		w.check()
	}
	w.finish()
}

// event runs one random event of the schedule.
func (w *propWorld) event() {
	rng := w.rng
	switch k := rng.IntN(20); {
	case k < 5:
		d := time.Duration(rng.Int64N(int64(2 * w.ls)))
		w.logf("wait %v", d)
		time.Sleep(d)
	case k < 9:
		w.inject()
	case k < 10:
		id := w.sessions[rng.IntN(len(w.sessions))]
		w.logf("operator suspends %s: %v", id, w.st.Suspend(id))
	case k < 11 && rng.IntN(2) == 0:
		id := w.sessions[rng.IntN(len(w.sessions))]
		w.logf("operator resumes %s: %v", id, w.st.Resume(id))
	case k < 11:
		w.skew(skews[rng.IntN(len(skews))])
	case k < 13:
		w.attach()
	case k < 16:
		w.heartbeat()
	case k < 18:
		w.closeHandle()
	case k < 19:
		if h := w.pick(); h != nil && rng.IntN(2) == 0 {
			w.spawnChild(h)
		} else if info, _ := w.st.SessionInfo(w.sessions[len(w.sessions)-1]); info.Status == "terminated" {
			w.spawn()
		} else {
			w.attach()
		}
	default:
		if rng.IntN(3) == 0 {
			w.closeClient()
		} else {
			w.heartbeat()
		}
	}
}

func (w *propWorld) inject() {
	faults := []caracaltest.Fault{
		{Status: http.StatusInternalServerError},
		{Status: http.StatusServiceUnavailable},
		{Status: http.StatusTooManyRequests, RetryAfter: time.Duration(1+w.rng.IntN(20)) * time.Second},
		{Drop: true},
		{Delay: time.Duration(w.rng.Int64N(int64(w.ls)))},
		{Status: http.StatusNotFound},
		{Status: http.StatusConflict, Code: "session_lease_fenced"},
		{Status: http.StatusConflict, Code: "session_not_live"},
	}
	f := faults[w.rng.IntN(len(faults))]
	if w.rng.IntN(3) == 0 {
		f.For = time.Duration(w.rng.Int64N(int64(w.ls)))
		if f.For == 0 {
			f.For = time.Second
		}
	} else {
		f.Times = 1 + w.rng.IntN(3)
	}
	w.logf("inject heartbeat fault %+v", f)
	w.st.Inject(caracaltest.RouteHeartbeat, f)
}

func (w *propWorld) spawn() {
	live := w.liveClients()
	if len(live) == 0 {
		return
	}
	pc := live[w.rng.IntN(len(live))]
	opt, mode, iv := w.renewal()
	lost := new(atomic.Int32)
	svc, err := pc.c.SpawnService(w.t.Context(), opt, caracal.OnLeaseLost(func(error) { lost.Add(1) }))
	if err != nil {
		w.logf("client %d SpawnService: %v", pc.idx, err)
		return
	}
	w.sessions = append(w.sessions, svc.ID())
	w.adopt(pc, svc, mode, iv, lost)
}

// spawnChild starts a service from parent's Context: its child, which ends
// when the parent does.
func (w *propWorld) spawnChild(parent *propHandle) {
	if parent.client.closed {
		return
	}
	opt, mode, iv := w.renewal()
	lost := new(atomic.Int32)
	svc, err := parent.client.c.SpawnService(parent.svc.Context(), opt, caracal.OnLeaseLost(func(error) { lost.Add(1) }))
	if err != nil {
		w.logf("client %d SpawnService under gen %d: %v", parent.client.idx, parent.gen, err)
		return
	}
	w.sessions = append(w.sessions, svc.ID())
	w.adopt(parent.client, svc, mode, iv, lost).parent = parent
}

func (w *propWorld) attach() {
	live := w.liveClients()
	if len(live) == 0 {
		return
	}
	pc := live[w.rng.IntN(len(live))]
	id := w.sessions[w.rng.IntN(len(w.sessions))]
	opt, mode, iv := w.renewal()
	lost := new(atomic.Int32)
	svc, err := pc.c.AttachService(w.t.Context(), id, opt, caracal.OnLeaseLost(func(error) { lost.Add(1) }))
	if err != nil {
		w.logf("client %d AttachService %s: %v", pc.idx, id, err)
		return
	}
	w.adopt(pc, svc, mode, iv, lost)
}

func (w *propWorld) pick() *propHandle {
	if len(w.handles) == 0 {
		return nil
	}
	return w.handles[w.rng.IntN(len(w.handles))]
}

// heartbeat renews a random handle by hand, inline or (racing the rest of
// the schedule) in a goroutine.
func (w *propWorld) heartbeat() {
	h := w.pick()
	if h == nil || h.client.closed {
		return
	}
	ctx := context.WithValue(w.t.Context(), manualKey{}, true)
	run := func() {
		l, err := h.svc.Heartbeat(ctx)
		w.logf("client %d gen %d Heartbeat: deadline in %v, %v", h.client.idx, h.gen, time.Until(l.Deadline), err)
	}
	if w.rng.IntN(3) == 0 {
		w.logf("client %d gen %d Heartbeat in the background", h.client.idx, h.gen)
		w.hbWG.Go(run)
		return
	}
	run()
}

func (w *propWorld) closeHandle() {
	h := w.pick()
	if h == nil {
		return
	}
	ctx, cancel := context.WithCancel(w.t.Context())
	defer cancel()
	if w.rng.IntN(3) == 0 {
		ctx, cancel = context.WithTimeout(ctx, time.Duration(w.rng.Int64N(int64(2*time.Second))))
		defer cancel()
	}
	err := h.svc.Close(ctx)
	w.markStopped(h)
	w.logf("client %d gen %d Close: %v", h.client.idx, h.gen, err)
}

func (w *propWorld) closeClient() {
	live := w.liveClients()
	pc := live[w.rng.IntN(len(live))]
	err := pc.c.Close(w.t.Context())
	pc.closed = true
	for _, h := range w.handles {
		if h.client == pc {
			w.markStopped(h)
		}
	}
	w.logf("client %d Close: %v", pc.idx, err)
}

// check tests the invariants on the state after an event.
func (w *propWorld) check() {
	w.t.Helper()
	now := time.Now()
	w.mu.Lock()
	sends := make([]hbSend, 0, len(w.sends))
	for _, s := range w.sends {
		sends = append(sends, *s)
	}
	w.mu.Unlock()

	type key struct {
		client  int
		session string
	}
	live := map[key]*propHandle{}
	for _, h := range w.handles {
		doneAt, ended := h.ended()
		err := h.svc.Err()
		if ended != (err != nil) {
			w.failf("client %d gen %d: Done closed %v but Err %v", h.client.idx, h.gen, ended, err)
		}
		if !h.closedAt.IsZero() && !ended {
			w.failf("client %d gen %d: live after its Close returned", h.client.idx, h.gen)
		}
		// A child that ended with its parent keeps its own lease: no
		// OnLeaseLost for it.
		inherited := h.parent != nil && h.parent.svc.Err() != nil && errors.Is(err, h.parent.svc.Err())
		if n, want := h.lost.Load(), lossOf(err) && !inherited; n > 1 || (n == 1) != want {
			w.failf("client %d gen %d: OnLeaseLost ran %d times; the handle ended with %v", h.client.idx, h.gen, n, err)
		}
		if p := h.parent; p != nil && p.svc.Err() != nil && !ended {
			w.failf("client %d gen %d: live after its parent (gen %d) ended: %v", h.client.idx, h.gen, p.gen, p.svc.Err())
		}
		if inherited {
			// It ends with its parent, not later.
			if pDone, _ := h.parent.ended(); doneAt.After(pDone) {
				w.failf("client %d gen %d: ended %v after its parent", h.client.idx, h.gen, doneAt.Sub(pDone))
			}
		}
		if ended {
			// 2: an expiry is reported at the deadline, not later.
			if errors.Is(err, caracal.ErrLeaseExpired) && !inherited {
				if dl := h.svc.Deadline(); doneAt.After(dl) {
					w.failf("client %d gen %d: expiry reported %v after the deadline", h.client.idx, h.gen, doneAt.Sub(dl))
				}
				if h.mode != "manual" && !strings.Contains(err.Error(), "last error") && !w.faulted(sends, h) {
					w.failf("client %d gen %d: renewed in the background, expired with no failure: %v", h.client.idx, h.gen, err)
				}
			}
			continue
		}
		// 1: an answer that ended the lease ended the handle.
		for _, s := range sends {
			if s.session == h.svc.ID() && s.gen == h.gen && s.final() && !s.answered.IsZero() {
				w.failf("client %d gen %d: live after the answer %d %q to its heartbeat at %v", h.client.idx, h.gen, s.status, s.agent, s.sent)
			}
		}
		k := key{h.client.idx, h.svc.ID()}
		if o := live[k]; o != nil {
			w.failf("client %d holds two live handles on %s: gen %d and %d", h.client.idx, h.svc.ID(), o.gen, h.gen)
		}
		live[k] = h
		// 2: a live handle's deadline lies ahead, and not after the
		// Coordinator's while it holds the lease.
		dl := h.svc.Deadline()
		if !now.Before(dl) {
			w.failf("client %d gen %d: live %v past its deadline", h.client.idx, h.gen, now.Sub(dl))
		}
		info, _ := w.st.SessionInfo(h.svc.ID())
		// The Coordinator's deadline is compared only when it was set
		// after its clock last jumped: a jump moves it, and no client can
		// tell.
		if info.Generation == h.gen && info.Status == "active" && !info.Deadline.Add(-w.ls-w.off).Before(w.skewAt) {
			if coord := info.Deadline.Add(-w.off); dl.Round(0).After(coord) {
				w.failf("client %d gen %d: local deadline %v after the Coordinator's", h.client.idx, h.gen, dl.Round(0).Sub(coord))
			}
		}
	}
	// 3: nothing sent after Close returned.
	for _, h := range w.handles {
		if !h.closedAt.IsZero() {
			if n := w.sentBy(h); n != h.sentAtStop {
				w.failf("client %d gen %d: %d heartbeats sent after Close returned", h.client.idx, h.gen, n-h.sentAtStop)
			}
		}
	}
	w.checkCadence(sends)
}

// faulted reports whether a heartbeat fault could have hit h's renewals:
// one of them went unanswered or failed.
func (w *propWorld) faulted(sends []hbSend, h *propHandle) bool {
	for _, s := range sends {
		if s.session == h.svc.ID() && s.gen == h.gen && s.status != http.StatusOK {
			return true
		}
	}
	return false
}

// checkCadence tests invariant 5 on consecutive background heartbeats of
// each handle with no manual one in between.
func (w *propWorld) checkCadence(sends []hbSend) {
	for _, h := range w.handles {
		if h.mode == "manual" {
			continue
		}
		var prev *hbSend
		for i := range sends {
			s := &sends[i]
			if s.session != h.svc.ID() || s.gen != h.gen {
				continue
			}
			if s.manual {
				prev = nil
				continue
			}
			// After a 401 the client exchanges its token and sends once
			// more, in the same renewal.
			if prev != nil && prev.status != http.StatusUnauthorized && !prev.answered.IsZero() && !s.deadline.IsZero() {
				gap, rem := s.sent.Sub(prev.answered), s.deadline.Sub(prev.answered)
				want := min(lease.MinRetry, rem)
				if prev.status == http.StatusOK && prev.agent == "active" {
					want = renewFloor(h.interval, rem)
				}
				if gap < want {
					w.failf("client %d gen %d: heartbeat %v after the previous answer (%d), want at least %v (lease remaining %v)",
						h.client.idx, h.gen, gap, prev.status, want, rem)
				}
			}
			prev = s
		}
	}
}

// finish closes everything and checks that no goroutine of a handle or
// client is left, and that the Coordinator saw no heartbeat of a handle
// after its Close returned.
func (w *propWorld) finish() {
	w.hbWG.Wait()
	for _, h := range w.handles {
		_ = h.svc.Close(w.t.Context())
		w.markStopped(h)
	}
	for _, pc := range w.clients {
		_ = pc.c.Close(w.t.Context())
		pc.closed = true
	}
	synctest.Wait()
	w.check()
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	for _, g := range strings.Split(stacks, "\n\n") {
		if strings.Contains(g, "caracal.(*Service)") || strings.Contains(g, "caracal.(*Client)") {
			w.failf("a goroutine outlives Close:\n%s", g)
		}
	}
	// The Coordinator's record, on its own clock: no heartbeat of a
	// closed handle arrived after its Close returned (after the latest time
	// that clock had shown by then, since it may have jumped back).
	for _, r := range w.st.Requests() {
		if r.Pattern != caracaltest.RouteHeartbeat {
			continue
		}
		for _, h := range w.handles {
			var body struct {
				LeaseGeneration int64 `json:"lease_generation"`
			}
			_ = json.Unmarshal(r.Body, &body)
			if strings.Contains(r.Path, "/"+h.svc.ID()+"/") && body.LeaseGeneration == h.gen && r.At.After(h.closedAtStack) {
				w.failf("client %d gen %d: a heartbeat reached the Coordinator %v after Close returned", h.client.idx, h.gen, r.At.Sub(h.closedAtStack))
			}
		}
	}
}

// lossOf reports whether a handle's reason is a lease loss, for which
// OnLeaseLost runs, rather than a close.
func lossOf(err error) bool {
	return err != nil && !errors.Is(err, caracal.ErrSessionClosed) && !errors.Is(err, caracal.ErrClosed)
}

// renewFloor is the least wait after a successful renewal that
// lease.RenewDelay documents: the fixed interval, or a third of the remaining
// lease clamped to [lease.MinCadence, lease.MaxCadence] less 10% jitter; in
// both cases no later than two thirds of the remaining lease.
func renewFloor(interval, rem time.Duration) time.Duration {
	d := interval
	if d <= 0 {
		d = min(max(rem/3, lease.MinCadence), lease.MaxCadence) * 9 / 10
	}
	return min(d, rem-rem/3)
}
