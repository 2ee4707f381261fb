package caracal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// The world of the randomized lease test (service_prop_test.go): clients
// whose transports record every heartbeat they send and the answer it got,
// the handles they hold, and a log of the schedule for failure messages.

// manualKey marks the context of a Heartbeat called by hand, so that the
// recorded sends tell background renewals from manual ones.
type manualKey struct{}

// hbSend is one heartbeat a client sent with a live context, and its outcome.
type hbSend struct {
	client   int
	session  string
	gen      int64
	manual   bool
	sent     time.Time
	deadline time.Time // the sending handle's local deadline when it was sent
	answered time.Time // zero while in flight
	status   int       // 0: no answer (dropped, cancelled)
	agent    string    // the answer's agent status ("active", "suspended")
}

// final reports whether the answer ended the lease for good: the handle
// that got it must have ended.
func (h hbSend) final() bool {
	return h.status == http.StatusNotFound || h.status == http.StatusConflict ||
		(h.status == http.StatusOK && h.agent == "suspended")
}

type propClient struct {
	idx    int
	c      *caracal.Client
	closed bool // Client.Close returned
}

type propHandle struct {
	svc      *caracal.Service
	client   *propClient
	gen      int64
	mode     string // "auto", "interval" or "manual"
	interval time.Duration
	lost     *atomic.Int32 // OnLeaseLost calls
	parent   *propHandle   // the handle whose Context started it, if any

	mu     sync.Mutex
	doneAt time.Time // when Done closed, seen by a watcher

	closedAt time.Time // when Close (or Client.Close) returned; zero before
	// closedAtStack is the latest time the Coordinator's clock had shown
	// by closedAt.
	closedAtStack time.Time
	sentAtStop    int // live-context heartbeats sent by then
}

func (h *propHandle) ended() (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.doneAt, !h.doneAt.IsZero()
}

type propWorld struct {
	t    *testing.T
	seed uint64
	rng  *rand.Rand
	st   *caracaltest.Stack
	clk  *skewClock    // the stack's clock
	off  time.Duration // the Coordinator's clock minus the client's
	// skewAt is when off last changed; stackHigh is the latest time the
	// Coordinator's clock had shown before then.
	skewAt, stackHigh time.Time
	ls                time.Duration // the Coordinator's lease

	clients  []*propClient
	handles  []*propHandle
	sessions []string
	hbWG     sync.WaitGroup // Heartbeat calls running in their own goroutine

	mu    sync.Mutex
	byGen map[string]map[int64]*propHandle
	sends []*hbSend
	trace []string
}

func (w *propWorld) logf(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.trace = append(w.trace, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
}

// failf fails the test with the seed and the schedule so far.
func (w *propWorld) failf(format string, args ...any) {
	w.t.Helper()
	w.mu.Lock()
	tr := strings.Join(w.trace, "\n  ")
	w.mu.Unlock()
	w.t.Fatalf("seed %d: %s\nschedule:\n  %s", w.seed, fmt.Sprintf(format, args...), tr)
}

// newClient adds a client whose transport records heartbeats.
func (w *propWorld) newClient() *propClient {
	pc := &propClient{idx: len(w.clients)}
	base := w.st.Transport()
	hc := &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/heartbeat") || r.Context().Err() != nil {
			return base.RoundTrip(r)
		}
		return w.recordHeartbeat(pc.idx, base, r)
	})}
	c, err := w.st.NewClient(caracal.WithHTTPClient(hc))
	if err != nil {
		w.failf("NewClient: %v", err)
	}
	pc.c = c
	w.t.Cleanup(func() { _ = c.Close(context.Background()) })
	w.clients = append(w.clients, pc)
	return pc
}

func (w *propWorld) recordHeartbeat(client int, base http.RoundTripper, r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var req struct {
		LeaseGeneration int64 `json:"lease_generation"`
	}
	_ = json.Unmarshal(body, &req)
	parts := strings.Split(r.URL.Path, "/")
	hb := &hbSend{
		client:  client,
		session: parts[len(parts)-2],
		gen:     req.LeaseGeneration,
		manual:  r.Context().Value(manualKey{}) != nil,
		sent:    time.Now(),
	}
	w.mu.Lock()
	if h := w.byGen[hb.session][hb.gen]; h != nil {
		hb.deadline = h.svc.Deadline()
	}
	w.sends = append(w.sends, hb)
	w.mu.Unlock()

	resp, err := base.RoundTrip(r)
	var agent string
	if err == nil {
		b, rerr := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		if rerr != nil {
			err, resp = rerr, nil
		} else {
			var a struct {
				Agent struct {
					Status string `json:"status"`
				} `json:"agent"`
			}
			_ = json.Unmarshal(b, &a)
			agent = a.Agent.Status
		}
	}
	w.mu.Lock()
	hb.answered = time.Now()
	if resp != nil {
		hb.status, hb.agent = resp.StatusCode, agent
	}
	w.mu.Unlock()
	return resp, err
}

// sentBy counts the live-context heartbeats sent with h's generation.
func (w *propWorld) sentBy(h *propHandle) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.sends {
		if s.session == h.svc.ID() && s.gen == h.gen {
			n++
		}
	}
	return n
}

// adopt registers a handle a client got and watches for its end.
func (w *propWorld) adopt(pc *propClient, svc *caracal.Service, mode string, interval time.Duration, lost *atomic.Int32) *propHandle {
	h := &propHandle{svc: svc, client: pc, gen: svc.Generation(), mode: mode, interval: interval, lost: lost}
	w.mu.Lock()
	if w.byGen[svc.ID()] == nil {
		w.byGen[svc.ID()] = map[int64]*propHandle{}
	}
	w.byGen[svc.ID()][h.gen] = h
	w.mu.Unlock()
	w.handles = append(w.handles, h)
	go func() {
		<-svc.Done()
		h.mu.Lock()
		h.doneAt = time.Now()
		h.mu.Unlock()
	}()
	w.logf("client %d holds %s gen %d (%s %v), deadline in %v", pc.idx, svc.ID(), h.gen, mode, interval, time.Until(svc.Deadline()))
	return h
}

// renewal picks how a new handle renews: in the background at the derived
// cadence, at a fixed interval, or by hand.
func (w *propWorld) renewal() (opt caracal.SpawnOption, mode string, interval time.Duration) {
	switch w.rng.IntN(4) {
	case 0:
		return nil, "manual", 0
	case 1:
		d := time.Duration(1+w.rng.IntN(150)) * time.Second
		return caracal.HeartbeatInterval(d), "interval", d
	}
	return caracal.HeartbeatAuto(), "auto", 0
}

func (w *propWorld) liveClients() []*propClient {
	var out []*propClient
	for _, pc := range w.clients {
		if !pc.closed {
			out = append(out, pc)
		}
	}
	return out
}

// markStopped records that h can no longer renew: its Close or its client's
// Close returned.
func (w *propWorld) markStopped(h *propHandle) {
	if h.closedAt.IsZero() {
		h.closedAt = time.Now()
		h.closedAtStack = w.stackLatest()
		h.sentAtStop = w.sentBy(h)
	}
}

// skew sets the offset of the Coordinator's clock from the client's, which
// also moves the Date of its answers.
func (w *propWorld) skew(off time.Duration) {
	w.stackHigh = w.stackLatest()
	w.off, w.skewAt = off, time.Now()
	w.clk.off.Store(int64(off))
	w.logf("the Coordinator's clock is %v off", off)
}

// stackLatest is the latest time the Coordinator's clock has shown.
func (w *propWorld) stackLatest() time.Time {
	if now := time.Now().Add(w.off); now.After(w.stackHigh) {
		return now
	}
	return w.stackHigh
}
