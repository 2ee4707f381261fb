package caracaltest

import (
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
	return rw.response(req, &memBody{rw: rw, ctx: ctx, cancel: cancel, done: done}), nil
}

// response is the client's view of what the handler sent, as net/http's
// client reports it: status, header, length and trailers, and body.
func (w *memResponseWriter) response(req *http.Request, body io.ReadCloser) *http.Response {
	resp := &http.Response{
		Status:        strconv.Itoa(w.status) + " " + http.StatusText(w.status),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.sent,
		ContentLength: -1,
		Trailer:       w.trailer,
		Request:       req,
		Body:          body,
	}
	if w.chunked {
		resp.TransferEncoding = []string{"chunked"}
	}
	if n, err := strconv.ParseInt(w.sent.Get("Content-Length"), 10, 64); err == nil && n >= 0 {
		resp.ContentLength = n
	}
	// A HEAD answer keeps the length its header announces (-1 without
	// one), as net/http's client reports it.
	if !w.head && (w.status == http.StatusNoContent || w.status == http.StatusNotModified) {
		resp.ContentLength = 0
	}
	return resp
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
