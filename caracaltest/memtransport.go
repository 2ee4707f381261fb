package caracaltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Fake host names the in-memory transport serves.
const (
	memSTSHost         = "sts.caracal.internal"
	memCoordinatorHost = "coordinator.caracal.internal"
	memGatewayHost     = "gateway.caracal.internal"
	memUpstreamDomain  = "upstream.caracal.internal"
)

// memPipeLimit is how many response bytes the in-memory transport buffers
// before a handler's Write waits for the client to read. Small responses
// therefore complete, and their handler goroutine ends, even if the client
// is slow to read them.
const memPipeLimit = 256 << 10

// errStackClosed is what requests to a closed stack fail with.
var errStackClosed = errors.New("caracaltest: stack is closed")

// memTransport is an http.RoundTripper that serves requests with the stack's
// handlers in-process: no sockets, and nothing a testing/synctest bubble
// cannot see. It is safe for concurrent use.
type memTransport struct {
	// stack is cancelled when the stack closes: new requests fail, and
	// running handlers see their context cancelled.
	stack context.Context
	// hosts maps a lower-cased host[:port] to its handler.
	hosts map[string]http.Handler
	// fallback serves hosts not in the map; nil fails them.
	fallback http.RoundTripper
}

func (t *memTransport) handler(u *url.URL) http.Handler {
	host := strings.ToLower(u.Host)
	if h, ok := t.hosts[host]; ok {
		return h
	}
	// http://host:80 is http://host.
	if name, port, ok := strings.Cut(host, ":"); ok && (u.Scheme == "http" && port == "80" || u.Scheme == "https" && port == "443") {
		return t.hosts[name]
	}
	return nil
}

// RoundTrip serves req with the handler of its host. The response body
// streams what the handler writes; closing it cancels the handler's context
// and waits for the handler to return, so no goroutine outlives it.
func (t *memTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	h := t.handler(req.URL)
	if h == nil {
		if t.fallback != nil {
			return t.fallback.RoundTrip(req)
		}
		closeBody(req)
		return nil, fmt.Errorf("caracaltest: dial %s: no such in-memory host", req.URL.Host)
	}
	ctx := req.Context()
	if t.stack.Err() != nil {
		closeBody(req)
		return nil, errStackClosed
	}
	if ctx.Err() != nil {
		closeBody(req)
		return nil, context.Cause(ctx)
	}

	// The handler's context is a server's: it ends when the client gives
	// up or the stack closes, and carries none of the client's values
	// (the caller's agent, above all).
	hctx, cancel := context.WithCancel(t.stack)
	stop := context.AfterFunc(ctx, cancel)
	sreq := serverRequest(hctx, req)
	// Once the request ends (the client gives up, the stack closes, the
	// response is done with), its body is closed, which fails a handler's
	// read that would otherwise wait for a client that stopped sending, as
	// a server's read fails when its connection closes.
	body := sreq.Body // a handler may replace sreq.Body with a wrapper
	context.AfterFunc(hctx, func() { _ = body.Close() })
	rw := &memResponseWriter{
		header: http.Header{},
		ready:  make(chan struct{}),
		pipe:   newMemPipe(hctx),
		head:   req.Method == http.MethodHead,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		defer stop()
		defer sreq.Body.Close()
		returned := false
		defer func() {
			if v := recover(); v != nil {
				err := io.ErrUnexpectedEOF
				if v != http.ErrAbortHandler {
					err = fmt.Errorf("caracaltest: handler panic: %v", v)
					// As a server of net/http logs it, with the stack
					// that the error leaves out.
					log.Printf("caracaltest: panic serving %s %s: %v\n%s", sreq.Method, req.URL.Redacted(), v, debug.Stack())
				}
				rw.abort(err)
			} else if !returned {
				// runtime.Goexit (t.Fatal in a handler): net/http closes
				// the connection.
				rw.abort(io.ErrUnexpectedEOF)
			}
		}()
		h.ServeHTTP(rw, sreq)
		returned = true
		rw.finish()
	}()

	select {
	case <-rw.ready:
	case <-ctx.Done():
	}
	if ctx.Err() != nil {
		// Like net/http, a request cancelled before its response was
		// handed over fails, with the context's cause, whatever the
		// handler managed to do.
		cancel()
		<-done
		return nil, context.Cause(ctx)
	}
	if rw.err != nil {
		<-done
		return nil, fmt.Errorf("caracaltest: %s %s: connection dropped: %w", req.Method, req.URL.Redacted(), rw.err)
	}
	resp := &http.Response{
		Status:        strconv.Itoa(rw.status) + " " + http.StatusText(rw.status),
		StatusCode:    rw.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        rw.sent,
		ContentLength: -1,
		Trailer:       rw.trailer,
		Request:       req,
		Body:          &memBody{pipe: rw.pipe, rw: rw, ctx: ctx, cancel: cancel, done: done},
	}
	if n, err := strconv.ParseInt(rw.sent.Get("Content-Length"), 10, 64); err == nil && n >= 0 {
		resp.ContentLength = n
	}
	// A HEAD answer keeps the length its header announces (-1 without
	// one), as net/http's client reports it.
	if !rw.head && (rw.status == http.StatusNoContent || rw.status == http.StatusNotModified) {
		resp.ContentLength = 0
	}
	return resp, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// serverRequest builds the request a server would hand its handler for the
// client request req: relative URL, RequestURI, Host, a cloned header, and
// the client's body.
func serverRequest(ctx context.Context, req *http.Request) *http.Request {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	header := canonicalHeader(req.Header)
	var body io.ReadCloser = http.NoBody
	cl := req.ContentLength
	if req.Body == nil || req.Body == http.NoBody {
		cl = 0
	} else {
		body = &onceCloser{ReadCloser: req.Body}
		if cl == 0 {
			cl = -1 // unknown length: the client would send it chunked
		}
	}
	u := &url.URL{Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}
	if u.Path == "" {
		u.Path = "/"
	}
	sreq := &http.Request{
		Method:        method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        header,
		Body:          body,
		ContentLength: cl,
		Host:          host,
		RemoteAddr:    "127.0.0.1:40000",
		RequestURI:    u.RequestURI(),
	}
	return sreq.WithContext(ctx)
}

// onceCloser closes a request body once, however many parts of the
// transport close it.
type onceCloser struct {
	io.ReadCloser
	once sync.Once
	err  error
}

func (c *onceCloser) Close() error {
	c.once.Do(func() { c.err = c.ReadCloser.Close() })
	return c.err
}

// canonicalHeader copies h with every key in canonical form, as a header
// that crossed the wire arrives: net/http sends keys as they are in the map
// and the receiving side canonicalises them. Values of keys that differ only
// in case are joined in the order net/http writes them, sorted by key; a key
// without values is not sent at all.
func canonicalHeader(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for _, k := range slices.Sorted(maps.Keys(h)) {
		if len(h[k]) == 0 {
			continue
		}
		ck := http.CanonicalHeaderKey(k)
		out[ck] = append(out[ck], h[k]...)
	}
	return out
}

// memResponseWriter is the http.ResponseWriter of an in-memory request.
type memResponseWriter struct {
	header http.Header
	head   bool
	pipe   *memPipe

	mu        sync.Mutex
	committed bool
	status    int
	sent      http.Header // header as of commit
	trailer   http.Header // the client's map, made at commit: announced names only
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
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.committed || (code >= 100 && code < 200 && code != http.StatusSwitchingProtocols) {
		return
	}
	w.committed = true
	w.status = code
	w.sent = canonicalHeader(w.header)
	// Made here, before the response is handed over: the client holds this
	// map, with the announced names, and its body fills in the values once
	// it reads to the end (as net/http does, on the reader's goroutine).
	w.trailer = http.Header{}
	for _, v := range w.sent.Values("Trailer") {
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				w.trailer[http.CanonicalHeaderKey(k)] = nil
			}
		}
	}
	w.readyOnce.Do(func() { close(w.ready) })
}

func (w *memResponseWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	committed := w.committed
	w.mu.Unlock()
	if !committed {
		if _, ok := w.header["Content-Type"]; !ok && w.header.Get("Transfer-Encoding") == "" && len(b) > 0 {
			w.header.Set("Content-Type", http.DetectContentType(b))
		}
		w.WriteHeader(http.StatusOK)
	}
	if w.head {
		return len(b), nil
	}
	if w.status == http.StatusNoContent || w.status == http.StatusNotModified {
		return 0, http.ErrBodyNotAllowed
	}
	return w.pipe.write(b)
}

// Flush commits the header; the body is already streamed as it is written.
func (w *memResponseWriter) Flush() {
	w.mu.Lock()
	committed := w.committed
	w.mu.Unlock()
	if !committed {
		w.WriteHeader(http.StatusOK)
	}
}

// finish ends a response whose handler returned: an uncommitted one becomes
// an empty 200, its trailers are recorded (announced ones, and those set
// only through http.TrailerPrefix), and the body reaches EOF.
func (w *memResponseWriter) finish() {
	w.Flush()
	w.mu.Lock()
	header := canonicalHeader(w.header)
	final := http.Header{}
	for k := range w.trailer {
		final[k] = header.Values(k)
	}
	for k, v := range header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			final[http.CanonicalHeaderKey(name)] = v
		}
	}
	w.final = final
	w.mu.Unlock()
	w.pipe.closeWrite(io.EOF)
}

// abort ends a response whose handler panicked (http.ErrAbortHandler is how
// a dropped connection is modelled): before commit the round trip fails,
// after it the body does.
func (w *memResponseWriter) abort(err error) {
	w.mu.Lock()
	if !w.committed {
		w.err = err
	}
	w.mu.Unlock()
	w.pipe.closeWrite(io.ErrUnexpectedEOF)
	w.readyOnce.Do(func() { close(w.ready) })
}

// memBody is the response body of an in-memory request.
type memBody struct {
	pipe   *memPipe
	rw     *memResponseWriter
	ctx    context.Context // the client request's context
	cancel context.CancelFunc
	done   <-chan struct{}
	once   sync.Once
}

// Read reads the body; at its end it fills in the response's trailers, on
// the caller's goroutine, so that reading resp.Trailer never races with
// the handler.
func (b *memBody) Read(p []byte) (int, error) {
	n, err := b.pipe.read(b.ctx, p)
	if err == io.EOF {
		b.rw.mu.Lock()
		for k, v := range b.rw.final {
			b.rw.trailer[k] = v
		}
		b.rw.mu.Unlock()
	}
	return n, err
}

// Close stops the handler (if it is still writing) and waits for it.
func (b *memBody) Close() error {
	b.once.Do(func() {
		b.pipe.closeRead()
		b.cancel()
		<-b.done
	})
	return nil
}

// memPipe is a bounded in-memory pipe whose waits are channel operations, so
// that goroutines blocked on it are durably blocked inside a synctest bubble.
type memPipe struct {
	// wctx ends a writer's wait for space (the handler's context).
	wctx    context.Context
	mu      sync.Mutex
	buf     bytes.Buffer
	werr    error // set when the writer is done: io.EOF or a failure
	rclosed bool
	// readable and writable are poked (never closed) when data, space or a
	// close happens; waiters re-check the state after each poke.
	readable chan struct{}
	writable chan struct{}
}

func newMemPipe(wctx context.Context) *memPipe {
	return &memPipe{wctx: wctx, readable: make(chan struct{}, 1), writable: make(chan struct{}, 1)}
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (p *memPipe) write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		p.mu.Lock()
		if p.rclosed {
			p.mu.Unlock()
			return n, io.ErrClosedPipe
		}
		if p.werr != nil {
			p.mu.Unlock()
			return n, io.ErrClosedPipe
		}
		if space := memPipeLimit - p.buf.Len(); space > 0 {
			k := min(space, len(b))
			p.buf.Write(b[:k])
			b = b[k:]
			n += k
			p.mu.Unlock()
			poke(p.readable)
			continue
		}
		p.mu.Unlock()
		select {
		case <-p.writable:
		case <-p.wctx.Done():
			return n, p.wctx.Err()
		}
	}
	return n, nil
}

func (p *memPipe) read(ctx context.Context, b []byte) (int, error) {
	for {
		// Like net/http, a cancelled request's body fails to read, even if
		// the handler has already finished writing it.
		if ctx.Err() != nil {
			return 0, context.Cause(ctx)
		}
		p.mu.Lock()
		if p.rclosed {
			p.mu.Unlock()
			return 0, errors.New("http: read on closed response body")
		}
		if p.buf.Len() > 0 {
			n, _ := p.buf.Read(b)
			p.mu.Unlock()
			poke(p.writable)
			return n, nil
		}
		if p.werr != nil {
			err := p.werr
			p.mu.Unlock()
			return 0, err
		}
		p.mu.Unlock()
		select {
		case <-p.readable:
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
	}
}

func (p *memPipe) closeWrite(err error) {
	p.mu.Lock()
	if p.werr == nil {
		p.werr = err
	}
	p.mu.Unlock()
	poke(p.readable)
}

func (p *memPipe) closeRead() {
	p.mu.Lock()
	p.rclosed = true
	p.buf.Reset()
	p.mu.Unlock()
	poke(p.writable)
}
