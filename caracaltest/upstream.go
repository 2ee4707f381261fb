package caracaltest

import (
	"fmt"
	"net/http"
	"sync/atomic"
)

// upstreamSlot serves a resource's in-process upstream: the resource's
// Upstream handler, the echo upstream, or what SetUpstream put there since.
type upstreamSlot struct {
	h atomic.Pointer[http.Handler]
}

func newUpstreamSlot(h http.Handler) *upstreamSlot {
	u := &upstreamSlot{}
	u.set(h)
	return u
}

func (u *upstreamSlot) set(h http.Handler) {
	if h == nil {
		h = echoHandler{}
	}
	u.h.Store(&h)
}

func (u *upstreamSlot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*u.h.Load()).ServeHTTP(w, r)
}

// SetUpstream makes h serve the resource from now on, in place of its
// Upstream handler (or the echo upstream; nil restores the echo upstream).
// It is the way to put a handler that needs a client of the stack, such as
// one behind caracal's Middleware, behind the Gateway:
//
//	st := caracaltest.Start(t)
//	c, _ := st.NewClient()
//	mw, _ := c.Middleware(caracal.VerifyTokens("resource://tickets"))
//	st.SetUpstream("resource://tickets", mw(myHandler))
//
// Requests already running finish with the handler they started with. It
// fails for an unknown resource and for one served at its own UpstreamURL.
// Safe for concurrent use.
func (s *Stack) SetUpstream(resourceIdentifier string, h http.Handler) error {
	slot := s.upstreams[resourceIdentifier]
	if slot == nil {
		if s.upstreamURLs[resourceIdentifier] != "" {
			return fmt.Errorf("caracaltest: resource %q is served at its own UpstreamURL, not in-process", resourceIdentifier)
		}
		return fmt.Errorf("caracaltest: unknown resource %q", resourceIdentifier)
	}
	slot.set(h)
	return nil
}
