package caracal

// The transport's copies of the caller's request, and how their bodies are
// kept from being sent twice or left open.

import (
	"context"
	"io"
	"net/http"
	"slices"
)

// cloneRequest copies req, under ctx, for the transport to change. A request may come
// without a header map (http.Client adds one; a direct RoundTrip call need
// not), and the copy needs one for the headers the transport sets. The copy
// shares the caller's trailer map, which the transport never writes: a
// caller may fill in trailer values only once the body is read.
func cloneRequest(req *http.Request, ctx context.Context) *http.Request {
	out := req.Clone(ctx)
	out.Trailer = req.Trailer
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	return out
}

// foldHeaders moves the values of h's keys that are a non-canonical
// spelling of one of names ("authorization", written into the map
// directly) under the canonical key, after its own. net/http sends both
// spellings as they are, so without this a header the transport sets would
// travel next to the caller's, and a receiver may read the caller's. h must
// be the transport's copy: the caller's value slices are not appended to.
func foldHeaders(h http.Header, names ...string) {
	for k, vs := range h {
		c := http.CanonicalHeaderKey(k)
		if c == k || !slices.Contains(names, c) {
			continue
		}
		have := h[c]
		h[c] = append(have[:len(have):len(have)], vs...)
		delete(h, k)
	}
}

// unreplayable keeps the base transport from re-sending out by itself.
// net/http silently re-sends a request whose pooled connection broke before
// the response when the request is replayable: an idempotent method or an
// Idempotency-Key header, and a body it can rewind (none, or GetBody set).
// Its HTTP/2 transport also re-sends a request of any method without a body
// (or with GetBody) whose stream was reset with REFUSED_STREAM or
// PROTOCOL_ERROR or cut off by a GOAWAY. The re-send would present the same
// single-use mandate, which the Gateway refuses as a replay, so a governed
// request gets a body net/http cannot rewind. Over HTTP/1 such a body that
// reads empty is still sent as no body at all for a GET, HEAD, DELETE or
// OPTIONS request, and as an empty chunked body for the other methods.
func unreplayable(out *http.Request) {
	out.GetBody = nil
	if out.Body == nil || out.Body == http.NoBody {
		// Without a body net/http sends no bytes whatever ContentLength
		// says; with emptyBody it would announce them and then fail.
		out.Body, out.ContentLength = emptyBody{}, 0
	}
}

// emptyBody is an empty request body net/http cannot rewind.
type emptyBody struct{}

func (emptyBody) Read([]byte) (int, error) { return 0, io.EOF }
func (emptyBody) Close() error             { return nil }

// closeBody honours the RoundTripper contract on an early error.
func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
