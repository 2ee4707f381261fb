package caracaltest

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/caracal-go/caracal/internal/wire"
)

// Fault is a scripted misbehaviour of one route, installed with Stack.Inject.
//
// A fault with a Status answers with that status and an error body in the
// service's own shape instead of running the route: STS token endpoint and
// Gateway {"error","error_description","requestId"} (plus X-Request-Id),
// STS approvals and JWKS {"error","error_description"}, Coordinator
// {"error"}, or for internal_error the Coordinator's own
// {"error","error_description","requestId"} with its fixed text. A fault
// with Drop closes the connection without an answer. A fault with only a
// Delay runs the route normally, late: a slow server.
type Fault struct {
	// Status is the HTTP status to answer with; 0 lets the route answer
	// (after Delay) unless Drop is set.
	Status int
	// Code is the body's "error"; empty picks the code the service uses for
	// Status (503 → "sts_unavailable" at the STS and Gateway,
	// "internal_error" at the Coordinator; 429 → "provider_rate_limited" /
	// "rate_limited"; ...).
	Code string
	// Description is the body's "error_description"; empty means
	// "injected fault". The Coordinator's bodies do not use it.
	Description string
	// RetryAfter, when positive, is sent as a Retry-After header in whole
	// seconds (rounded up). No real Caracal service sends one; upstreams and
	// proxies in front of them may.
	RetryAfter time.Duration
	// Delay holds the request this long (real time, or the bubble's time
	// inside testing/synctest) before answering. The wait ends early, with no
	// answer, when the client gives up or the stack closes.
	Delay time.Duration
	// Drop closes the connection without a response: the client sees a
	// transport error, as when a server crashes or a proxy resets. Go's
	// http.Transport retries an idempotent request (GET, or one with an
	// Idempotency-Key) once by itself when a reused keep-alive connection is
	// dropped, so over loopback such a request may consume two Times.
	Drop bool
	// Times limits the fault to the next Times matching requests; 0 means
	// every request until the window ends or ClearFaults.
	Times int
	// For limits the fault to a window of this length starting at Inject,
	// measured on the stack's clock; 0 means no time limit.
	For time.Duration
}

// activeFault is an installed fault and what is left of it.
type activeFault struct {
	f         Fault
	remaining int       // for Times > 0
	until     time.Time // zero: no window
}

// faultSet holds the installed faults, per route pattern, in Inject order.
type faultSet struct {
	clock Clock

	mu        sync.Mutex
	byPattern map[string][]*activeFault
}

func newFaultSet(clock Clock) *faultSet {
	return &faultSet{clock: clock, byPattern: map[string][]*activeFault{}}
}

func (fs *faultSet) add(pattern string, f Fault) {
	a := &activeFault{f: f, remaining: f.Times}
	if f.For > 0 {
		a.until = fs.clock.Now().Add(f.For)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.byPattern[pattern] = append(fs.byPattern[pattern], a)
}

func (fs *faultSet) clear() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	clear(fs.byPattern)
}

// take returns the fault the next request on pattern meets, if any, and
// consumes one of its Times. Faults that ran out are dropped; the first
// live one wins, so faults queue up in Inject order.
func (fs *faultSet) take(pattern string) (Fault, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	list := fs.byPattern[pattern]
	if len(list) == 0 {
		return Fault{}, false
	}
	now := fs.clock.Now()
	for len(list) > 0 {
		a := list[0]
		if !a.until.IsZero() && !now.Before(a.until) {
			list = list[1:]
			continue
		}
		f := a.f
		if a.f.Times > 0 {
			a.remaining--
			if a.remaining == 0 {
				list = list[1:]
			}
		}
		fs.byPattern[pattern] = list
		return f, true
	}
	delete(fs.byPattern, pattern)
	return Fault{}, false
}

// serve applies f to a request of the given route. It reports whether the
// route's own handler should still run (a Delay-only fault).
func (f Fault) serve(w http.ResponseWriter, r *http.Request, service, pattern string) (runRoute bool) {
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return false
		}
	}
	if f.Drop {
		dropConnection(w)
		return false
	}
	if f.Status == 0 {
		return true
	}
	writeFault(w, r, service, pattern, f)
	return false
}

// dropConnection ends the request without a response. Over loopback it
// hijacks and closes the connection; in memory (and wherever hijacking is
// not possible) it aborts the handler, which both net/http and the
// in-memory transport turn into a connection the client sees fail.
func dropConnection(w http.ResponseWriter) {
	if sw, ok := w.(*statusWriter); ok {
		sw.commit(0)
	}
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = conn.Close()
		return
	}
	panic(http.ErrAbortHandler)
}

// writeFault answers with f's status and an error body in the service's
// shape (PROTOCOL §9.1).
func writeFault(w http.ResponseWriter, r *http.Request, service, pattern string, f Fault) {
	code := f.Code
	if code == "" {
		code = defaultFaultCode(service, f.Status)
	}
	desc := f.Description
	if desc == "" {
		desc = "injected fault"
	}
	var body any
	switch {
	case service == svcCoordinator && code == "internal_error":
		body = wire.ErrorBody{
			Error:            code,
			ErrorDescription: "The service failed to process the request",
			RequestID:        coordinatorRequestID(r),
		}
	case service == svcCoordinator:
		body = wire.ErrorBody{Error: code}
	case service == svcSTS && pattern != RouteToken:
		// Approvals and JWKS carry no request id.
		body = plainError{Error: code, Description: desc}
	default:
		rid := stsRequestID(r)
		if service != svcSTS {
			rid = gatewayRequestID(r)
		}
		w.Header().Set(wire.HeaderRequestID, rid)
		body = stsErrorBody{Error: code, Description: desc, RequestID: rid}
	}
	if f.RetryAfter > 0 {
		secs := int64((f.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	if service != svcCoordinator && f.Status == http.StatusUnauthorized && code == "interaction_required" {
		w.Header().Set("WWW-Authenticate", `Bearer error="interaction_required"`)
	}
	if service == svcCoordinator {
		writeJSON(w, f.Status, body)
		return
	}
	writeSTSJSON(w, f.Status, body)
}

// defaultFaultCode is the error code the service answers status with.
func defaultFaultCode(service string, status int) string {
	if service == svcCoordinator {
		switch status {
		case http.StatusBadRequest:
			return "invalid_body"
		case http.StatusUnauthorized:
			return "invalid_token"
		case http.StatusForbidden:
			return "missing_scope"
		case http.StatusNotFound:
			return "session_not_found"
		case http.StatusConflict:
			return "session_not_live"
		case http.StatusTooManyRequests:
			return "rate_limited"
		}
		return "internal_error"
	}
	switch status {
	case http.StatusBadRequest, http.StatusUnauthorized:
		return "invalid_token"
	case http.StatusForbidden, http.StatusConflict:
		return "access_denied"
	case http.StatusNotFound:
		return "resource_not_found"
	case http.StatusRequestEntityTooLarge:
		return "payload_too_large"
	case http.StatusTooManyRequests:
		return "provider_rate_limited"
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return "sts_unavailable"
	}
	if status >= 500 {
		return "internal_error"
	}
	return "invalid_token"
}
