package caracaltest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/caracal-go/caracal/internal/wire"
)

// hopHeaders are removed in both directions.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
}

// dropHopHeaders removes hop-by-hop headers, including those Connection names
// and every Proxy-* header.
func dropHopHeaders(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			h.Del(strings.TrimSpace(name))
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
	for k := range h {
		if strings.HasPrefix(k, "Proxy-") {
			delete(h, k)
		}
	}
}

// upstreamHeaders builds the upstream request's headers (PROTOCOL §8.6).
func upstreamHeaders(r *http.Request, rid, token string) http.Header {
	h := r.Header.Clone()
	dropHopHeaders(h)
	for k := range h {
		if strings.HasPrefix(k, "X-Caracal-") || strings.HasPrefix(k, "X-Forwarded-") {
			delete(h, k)
		}
	}
	for _, k := range []string{"Forwarded", "X-Real-Ip", "Authorization", "Traceparent", "Baggage"} {
		h.Del(k)
	}
	if b := stripCaracalBaggage(r.Header.Values("Baggage")); b != "" {
		h.Set("Baggage", b)
	}
	h.Set("Authorization", "Bearer "+token)
	h.Set(wire.HeaderRequestID, rid)
	tp := r.Header.Get("Traceparent")
	if !validTraceparent(tp) {
		tp = newTraceparent()
	}
	h.Set("Traceparent", tp)
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		h.Set("X-Forwarded-For", host)
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	h.Set("X-Forwarded-Proto", proto)
	h.Set("X-Forwarded-Host", r.Host)
	return h
}

// stripCaracalBaggage drops caracal.* members from baggage header values.
func stripCaracalBaggage(values []string) string {
	var keep []string
	for _, v := range values {
		for _, m := range strings.Split(v, ",") {
			m = strings.TrimSpace(m)
			key, _, _ := strings.Cut(m, "=")
			key, _, _ = strings.Cut(key, ";")
			if m == "" || strings.HasPrefix(strings.TrimSpace(key), "caracal.") {
				continue
			}
			keep = append(keep, m)
		}
	}
	return strings.Join(keep, ",")
}

func validTraceparent(tp string) bool {
	m := traceparentPattern.FindStringSubmatch(tp)
	return m != nil && strings.Trim(m[1], "0") != "" && strings.Trim(m[2], "0") != ""
}

func newTraceparent() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "00-" + hex.EncodeToString(b[:16]) + "-" + hex.EncodeToString(b[16:]) + "-01"
}

// responseHeaders filters the upstream's response headers into dst and adds
// the Gateway's own (PROTOCOL §8.6).
func responseHeaders(dst, src http.Header, rid string, expIn int) {
	h := src.Clone()
	dropHopHeaders(h)
	for _, k := range []string{"Server", "X-Powered-By", "X-Aspnet-Version", "X-Aspnetmvc-Version", "X-Caracal-Identity", "Refresh"} {
		h.Del(k)
	}
	for _, k := range []string{"Location", "Content-Location"} {
		if v := h.Get(k); v != "" {
			if u, err := url.Parse(v); err != nil || u.IsAbs() || u.Host != "" {
				h.Del(k)
			}
		}
	}
	for k, v := range h {
		dst[k] = v
	}
	dst.Set(wire.HeaderRequestID, rid)
	dst.Set(gatewayTokenExpiry, strconv.Itoa(expIn))
	dst.Set("Trailer", "X-Caracal-Revoked")
}

// upstreamURL joins the upstream base with the request path and merges the
// queries (upstream keys win).
func upstreamURL(base string, r *http.Request) (*url.URL, error) {
	if base == "" {
		base = "http://upstream.caracal.internal"
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	out := *u
	if u.Path == "" || u.Path == "/" {
		out.Path, out.RawPath = r.URL.Path, r.URL.RawPath
	} else {
		out.Path, out.RawPath = path.Join(u.Path, r.URL.Path), ""
	}
	if u.RawQuery != "" {
		q := r.URL.Query()
		for k, v := range u.Query() {
			q[k] = v
		}
		out.RawQuery = q.Encode()
	} else {
		out.RawQuery = r.URL.RawQuery
	}
	return &out, nil
}

// proxy forwards the admitted request to the resource's upstream.
func (w *world) proxy(rw http.ResponseWriter, r *http.Request, rid string, g *gatewayGrant) {
	if r.ContentLength > gatewayBodyMax {
		writeGatewayFailure(rw, rid, bodyTooLarge())
		return
	}
	u, err := upstreamURL(g.upstream.url, r)
	if err != nil {
		writeGatewayFailure(rw, rid, gwFail(http.StatusBadRequest, "internal_error", "upstream request build failed"))
		return
	}
	body := io.Reader(http.NoBody)
	capped := &cappedBody{}
	if r.Body != nil && r.Body != http.NoBody {
		capped.rc = http.MaxBytesReader(rw, r.Body, gatewayBodyMax)
		body = capped
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), body)
	if err != nil {
		writeGatewayFailure(rw, rid, gwFail(http.StatusBadRequest, "internal_error", "upstream request build failed"))
		return
	}
	out.Header = upstreamHeaders(r, rid, g.token)
	out.ContentLength = r.ContentLength
	out.Host = u.Host
	if g.upstream.handler != nil {
		out.RequestURI = u.RequestURI()
		out.RemoteAddr = "127.0.0.1:0"
		uw := &upstreamWriter{rw: rw, body: w.revocationCut(rw, g.mandate), rid: rid, expIn: g.expIn, header: http.Header{}, tooBig: &capped.over}
		if serveInProcess(g.upstream.handler, uw, out) {
			uw.WriteHeader(http.StatusOK) // an upstream that wrote nothing answered 200
		} else if !uw.wrote {
			writeGatewayFailure(rw, rid, gwFail(http.StatusBadGateway, "internal_error", "upstream unreachable"))
		} else {
			panic(http.ErrAbortHandler) // cut mid-response: so is the Gateway's
		}
		return
	}
	hc := http.DefaultClient
	if w.upstreamHC != nil {
		hc = w.upstreamHC
	}
	noRedirect := *hc
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noRedirect.Do(out)
	if err != nil {
		switch {
		case capped.over.Load():
			writeGatewayFailure(rw, rid, bodyTooLarge())
		case r.Context().Err() != nil:
			writeGatewayFailure(rw, rid, gwFail(statusClientClosed, "internal_error", "client cancelled"))
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			writeGatewayFailure(rw, rid, gwFail(http.StatusGatewayTimeout, "internal_error", "upstream timeout"))
		default:
			writeGatewayFailure(rw, rid, gwFail(http.StatusBadGateway, "internal_error", "upstream unreachable"))
		}
		return
	}
	defer resp.Body.Close()
	responseHeaders(rw.Header(), resp.Header, rid, g.expIn)
	rw.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w.revocationCut(rw, g.mandate), resp.Body)
}

// serveInProcess runs an in-process upstream. It reports false when the
// handler aborted with http.ErrAbortHandler, net/http's way to drop the
// connection; any other panic propagates.
func serveInProcess(h http.Handler, rw http.ResponseWriter, r *http.Request) (answered bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			answered = false
		}
	}()
	h.ServeHTTP(rw, r)
	return true
}

// revokedChunk is how often a response body re-checks the revocation cache.
const revokedChunk = 4 << 10

// errRevokedMidStream stops a response whose mandate was revoked while it
// streamed.
var errRevokedMidStream = errors.New("caracaltest: mandate revoked while the response streamed")

// revocationCut returns the writer a response body goes through: it re-checks
// the revocation cache before every 4 KiB chunk and, once the mandate's
// session, edge or records are revoked, cuts the body and sets the
// X-Caracal-Revoked trailer (PROTOCOL §8.4).
func (w *world) revocationCut(rw http.ResponseWriter, c *tokenClaims) io.Writer {
	return &cutWriter{w: w, rw: rw, c: c}
}

type cutWriter struct {
	w   *world
	rw  http.ResponseWriter
	c   *tokenClaims
	cut bool
}

func (cw *cutWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		if cw.cut {
			return n, errRevokedMidStream
		}
		cw.w.mu.Lock()
		cw.cut = cw.w.revoked(cw.c)
		cw.w.mu.Unlock()
		if cw.cut {
			cw.rw.Header().Set("X-Caracal-Revoked", "true")
			return n, errRevokedMidStream
		}
		k := min(len(b), revokedChunk)
		m, err := cw.rw.Write(b[:k])
		n += m
		if err != nil {
			return n, err
		}
		b = b[k:]
	}
	return n, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// upstreamWriter lets an in-process upstream write through the Gateway's
// response filter.
type upstreamWriter struct {
	rw     http.ResponseWriter
	body   io.Writer // rw behind the revocation re-check
	rid    string
	expIn  int
	header http.Header
	wrote  bool
	// tooBig is set once the upstream read past the Gateway's body cap;
	// the Gateway then answers 413 in place of the upstream, as a proxy
	// that reads the body before forwarding would.
	tooBig  *atomic.Bool
	dropped bool
}

func (u *upstreamWriter) Header() http.Header { return u.header }

func (u *upstreamWriter) WriteHeader(code int) {
	if u.wrote || (code >= 100 && code < 200 && code != http.StatusSwitchingProtocols) {
		// An informational response is not the answer; the Gateway's HTTP
		// client consumes it and forwards the final one.
		return
	}
	u.wrote = true
	if u.tooBig != nil && u.tooBig.Load() {
		u.dropped = true
		writeGatewayFailure(u.rw, u.rid, bodyTooLarge())
		return
	}
	responseHeaders(u.rw.Header(), u.header, u.rid, u.expIn)
	u.rw.WriteHeader(code)
}

func (u *upstreamWriter) Write(b []byte) (int, error) {
	u.WriteHeader(http.StatusOK)
	if u.dropped {
		return len(b), nil
	}
	return u.body.Write(b)
}

// bodyTooLarge is the Gateway's answer to a body past gatewayBodyMax.
func bodyTooLarge() *gatewayFailure {
	return gwFail(http.StatusRequestEntityTooLarge, "payload_too_large", "request body too large")
}

// cappedBody is a request body behind http.MaxBytesReader that remembers
// whether the cap was hit.
type cappedBody struct {
	rc   io.ReadCloser
	over atomic.Bool
}

func (c *cappedBody) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		c.over.Store(true)
	}
	return n, err
}

func (c *cappedBody) Close() error { return c.rc.Close() }

// Flush lets streaming upstreams flush through the Gateway.
func (u *upstreamWriter) Flush() {
	u.WriteHeader(http.StatusOK)
	if f, ok := u.rw.(http.Flusher); ok {
		f.Flush()
	}
}
