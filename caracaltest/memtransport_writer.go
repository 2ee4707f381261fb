package caracaltest

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// memBufferSize is how much of a body the in-memory writer holds before it
// sends the header, as net/http's server does: a handler that returns by
// then gets a Content-Length, and its Content-Type is sniffed from what it
// wrote, even after an explicit WriteHeader.
const memBufferSize = 2048

// memResponseWriter is the http.ResponseWriter of an in-memory request.
type memResponseWriter struct {
	header http.Header
	head   bool
	pipe   *memPipe

	// Set and read on the handler's goroutine only.
	wroteHeader bool
	code        int
	snap        http.Header // the header as of WriteHeader
	haveType    bool        // the handler set Content-Type, even to nothing
	length      int64       // the body's length, once known; -1 before
	badLength   bool        // the handler set a Content-Length that is not one
	written     int64       // bytes the handler wrote, refused ones too
	accepted    int64       // bytes of body the handler's writes delivered
	pending     []byte      // body not yet sent: the header is not either

	mu        sync.Mutex
	committed bool
	status    int
	sent      http.Header // header as sent, once committed
	chunked   bool        // sent without a length: trailers follow the body
	trailer   http.Header // the client's map, made at commit: announced names only
	announced []string    // the announced names, in order, repeats included
	final     http.Header // the trailers, set by finish
	err       error       // set if the handler aborted before committing
	ready     chan struct{}
	readyOnce sync.Once
}

func (w *memResponseWriter) Header() http.Header { return w.header }

func (w *memResponseWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.wroteHeader || (code >= 100 && code < 200 && code != http.StatusSwitchingProtocols) {
		return
	}
	w.wroteHeader = true
	w.code = code
	_, w.haveType = w.header["Content-Type"]
	w.snap = canonicalHeader(w.header)
	w.length = -1
	if cl := w.snap.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			w.length = n
		} else {
			w.snap.Del("Content-Length")
			w.badLength = true
		}
	}
}

func (w *memResponseWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(b) == 0 {
		return 0, nil
	}
	if !bodyAllowedForStatus(w.code) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(b))
	if w.length != -1 && w.written > w.length {
		return 0, http.ErrContentLength
	}
	w.accepted += int64(len(b))
	if !w.committed {
		w.pending = append(w.pending, b...)
		if len(w.pending) <= memBufferSize {
			return len(b), nil
		}
		held := len(w.pending) - len(b)
		n, err := w.commit(false)
		return max(n-held, 0), err
	}
	if w.head {
		return len(b), nil
	}
	return w.pipe.write(b)
}

// Flush sends the header and what the handler wrote so far.
func (w *memResponseWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_, _ = w.commit(false)
}

// commit hands the response over to the client, with the header as
// net/http's server would send it, and sends the body held so far. done
// says the handler has returned, so what it wrote is the whole body.
func (w *memResponseWriter) commit(done bool) (int, error) {
	if w.committed {
		return 0, nil
	}
	h, p := w.snap, w.pending
	w.pending = nil
	bodyAllowed := bodyAllowedForStatus(w.code)
	trailers := len(h["Trailer"]) > 0
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			delete(h, k)
			trailers = true
		}
	}
	te := h.Get("Transfer-Encoding")
	h.Del("Transfer-Encoding") // the client moves it to resp.TransferEncoding
	// As net/http's, a body whose handler set an invalid Content-Length
	// goes without one, even if it is complete.
	if done && !trailers && te == "" && bodyAllowed && w.length == -1 && !w.badLength && (!w.head || len(p) > 0) {
		w.length = int64(len(p))
		h.Set("Content-Length", strconv.Itoa(len(p)))
	}
	if !bodyAllowed {
		h.Del("Content-Length")
		if w.code == http.StatusNotModified {
			h.Del("Content-Type")
		}
	} else if !w.haveType && te == "" && h.Get("Content-Encoding") == "" && len(p) > 0 {
		h.Set("Content-Type", http.DetectContentType(p))
	}
	// A length next to a Transfer-Encoding of the handler's is not sent,
	// but, as net/http's server does, the writer still refuses writes
	// past it.
	sized := w.length != -1
	if sized && te != "" && te != "identity" {
		h.Del("Content-Length")
		sized = false
	}
	chunked := !w.head && bodyAllowed && !sized && te != "identity"

	w.mu.Lock()
	w.committed = true
	w.status = w.code
	w.chunked = chunked
	// Made here, before the response is handed over: the client holds this
	// map, with the announced names, and its body fills in the values once
	// it reads to the end (as net/http does, on the reader's goroutine).
	// Only a chunked body carries trailers; its Trailer header is moved
	// here, as net/http's client does.
	w.trailer = http.Header{}
	if chunked {
		for _, v := range h.Values("Trailer") {
			for _, k := range strings.Split(v, ",") {
				if k = strings.TrimSpace(k); k != "" {
					k = http.CanonicalHeaderKey(k)
					w.trailer[k] = nil
					w.announced = append(w.announced, k)
				}
			}
		}
		h.Del("Trailer")
	}
	w.sent = h
	w.mu.Unlock()
	w.readyOnce.Do(func() { close(w.ready) })
	if w.head || len(p) == 0 {
		return len(p), nil
	}
	return w.pipe.write(p)
}

// finish ends a response whose handler returned: an uncommitted one is sent
// whole (an empty 200 if nothing was written), its trailers are recorded
// (announced ones, and those set only through http.TrailerPrefix), and the
// body reaches EOF. A body sent with a Content-Length it falls short of or
// goes past ends as net/http's server ends it, by closing the connection: a
// client that has the whole length sees no more than that, one short of it
// sees the body cut.
func (w *memResponseWriter) finish() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_, _ = w.commit(true)
	if !w.head && bodyAllowedForStatus(w.code) && !w.chunked && w.length != -1 && w.accepted != w.length {
		w.pipe.closeWrite(io.ErrUnexpectedEOF)
		return
	}
	w.mu.Lock()
	if w.chunked {
		header := canonicalHeader(w.header)
		// As net/http's server sends them: those set through
		// http.TrailerPrefix, then each announced name's values, once per
		// time it was announced.
		final := http.Header{}
		for k, v := range header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				final[http.CanonicalHeaderKey(name)] = v
			}
		}
		for _, k := range w.announced {
			final[k] = append(final[k], header.Values(k)...)
		}
		w.final = final
	}
	w.mu.Unlock()
	w.pipe.closeWrite(io.EOF)
}

// abort ends a response whose handler panicked (http.ErrAbortHandler is how
// a dropped connection is modelled): before commit the round trip fails,
// after it the body does, unless it was complete (no body, or all of its
// Content-Length) or has no framing to tell (neither chunked nor sized: it
// ends where the connection does).
func (w *memResponseWriter) abort(err error) {
	w.mu.Lock()
	if !w.committed {
		w.err = err
	}
	w.mu.Unlock()
	end := io.ErrUnexpectedEOF
	if w.head || !bodyAllowedForStatus(w.code) || !w.chunked && (w.length == -1 || w.accepted == w.length) {
		end = io.EOF
	}
	w.pipe.closeWrite(end)
	w.readyOnce.Do(func() { close(w.ready) })
}

// bodyAllowedForStatus reports whether a response with the status may have
// a body: not 1xx, 204 or 304.
func bodyAllowedForStatus(status int) bool {
	return !(status >= 100 && status <= 199 || status == http.StatusNoContent || status == http.StatusNotModified)
}
