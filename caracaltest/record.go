package caracaltest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Service names, as Request.Service reports them.
const (
	svcSTS         = "sts"
	svcCoordinator = "coordinator"
	svcGateway     = "gateway"
	svcUpstream    = "upstream"
)

// recordBodyLimit caps how much of a request body a Request keeps.
const recordBodyLimit = 1 << 20

// redacted replaces a secret in the record.
const redacted = "[redacted]"

// Request is one request a service of the stack received, as recorded for
// assertions. Secrets never appear in it: an Authorization header is shown as
// "Bearer <use=session jti=…>" (the token's unverified use and jti claims),
// and client_secret form fields as "[redacted]".
type Request struct {
	// Service is "sts", "coordinator", "gateway", or "upstream" for a
	// request the Gateway forwarded to a resource's in-process upstream.
	Service string
	Method  string
	Path    string
	// Pattern is the route that served the request (one of the Route
	// constants), empty for upstream requests and requests no route matched.
	Pattern string
	// Query is the parsed query string.
	Query url.Values
	// Header is the request's header with credentials redacted.
	Header http.Header
	// Form is the parsed form of an application/x-www-form-urlencoded body,
	// with secrets redacted; nil for other bodies.
	Form url.Values
	// Body is the request body (at most 1 MiB), with form secrets redacted;
	// in a form or STS body, text that is not a form field (JSON, say) is
	// replaced by "[redacted]" too.
	Body []byte
	// Status is the status the stack answered with; 0 when it sent no
	// response (a dropped connection, or a client that gave up first).
	Status int
	// At is when the request arrived, on the stack's clock.
	At time.Time
}

// recorder keeps the requests of one stack. A request takes its place in
// arrival order when it arrives and becomes visible when its outcome is
// known, so a Gateway request is listed before the upstream request it
// caused even though the upstream answers first.
type recorder struct {
	mu      sync.Mutex
	entries []*recorded
}

type recorded struct {
	req  Request
	done bool
}

// reserve places a request in the record, still invisible.
func (rc *recorder) reserve() *recorded {
	e := &recorded{}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.entries = append(rc.entries, e)
	return e
}

// complete makes a reserved request visible with its final content.
func (rc *recorder) complete(e *recorded, r Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	e.req = r
	e.done = true
}

func (rc *recorder) all() []Request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]Request, 0, len(rc.entries))
	for _, e := range rc.entries {
		if e.done {
			out = append(out, e.req.clone())
		}
	}
	return out
}

func (rc *recorder) count(pattern string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, e := range rc.entries {
		if e.done && e.req.Pattern == pattern {
			n++
		}
	}
	return n
}

// reset forgets the record; requests still running when it is called are
// not recorded.
func (rc *recorder) reset() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.entries = nil
}

func (r Request) clone() Request {
	r.Query = cloneValues(r.Query)
	r.Header = r.Header.Clone()
	r.Form = cloneValues(r.Form)
	r.Body = bytes.Clone(r.Body)
	return r
}

func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	return url.Values(http.Header(v).Clone())
}

// recEntryKey carries the *recEntry of a request through its context, so
// that the route wrapper can name the pattern that matched.
type recEntryKey struct{}

type recEntry struct{ pattern string }

func setRecordedPattern(ctx context.Context, pattern string) {
	if e, ok := ctx.Value(recEntryKey{}).(*recEntry); ok {
		e.pattern = pattern
	}
}

// recordHandler records every request h serves as a request to service.
// The record is added when the response status is committed (or the
// connection dropped), before the client can see anything, so that a test
// that has its response in hand also finds the request in the record.
//
// closed is the stack's context: a request it ended before an answer began
// (Close during an injected Delay, an approval long poll, an upstream
// waiting on its context) gets no answer, rather than the empty 200
// net/http would make of the handler's silence.
func recordHandler(rc *recorder, clock Clock, closed context.Context, service string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := clock.Now()
		slot := rc.reserve()
		body, err := peekBody(r)
		e := &recEntry{}
		r = r.WithContext(context.WithValue(r.Context(), recEntryKey{}, e))
		rec := Request{
			Service: service,
			Method:  r.Method,
			Path:    r.URL.Path,
			Query:   redactQuery(r.URL.Query()),
			Header:  redactHeader(r.Header),
			At:      at,
		}
		if len(rec.Query) == 0 {
			rec.Query = nil
		}
		switch {
		case isForm(r.Header):
			rec.Form, rec.Body = redactForm(body)
		case service == svcSTS && len(body) > 0:
			// Every STS body is a form in intent, whatever its declared
			// type: a client_secret in it is redacted all the same.
			_, rec.Body = redactForm(body)
		case len(body) > 0:
			rec.Body = body
		}
		sw := &statusWriter{ResponseWriter: w}
		sw.onCommit = func(status int) {
			rec.Pattern = e.pattern
			rec.Status = status
			rc.complete(slot, rec)
		}
		if err != nil {
			// The body could not be read (the client went away): drop the
			// connection without running the route, as net/http's answer
			// never reaches a client whose connection is gone.
			dropConnection(sw)
			return
		}
		completed := false
		defer func() {
			if !completed || r.Context().Err() != nil {
				sw.commit(0)
			}
			sw.commit(http.StatusOK)
		}()
		sw.closed = closed
		h.ServeHTTP(sw, r)
		completed = true
		if sw.refuse() {
			dropConnection(sw)
		}
	})
}

// peekBody reads up to recordBodyLimit bytes of r's body and puts them back
// in front of the rest, so the route still reads the whole body.
func peekBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, recordBodyLimit))
	if err != nil {
		return nil, err
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), r.Body), r.Body}
	return b, nil
}

func isForm(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// secretFields are form fields whose values never go into the record.
var secretFields = map[string]bool{"client_secret": true}

// tokenFields are form fields holding tokens, recorded as their summary.
var tokenFields = map[string]bool{"subject_token": true, "actor_token": true, "client_assertion": true}

// redactForm parses a form body and returns it, and the body itself, with
// secrets replaced. The body keeps its field order and encoding.
func redactForm(body []byte) (url.Values, []byte) {
	form := url.Values{}
	var out strings.Builder
	// ";" separates fields too here: the STS refuses such a body, but the
	// fields after a ";" may still hold a secret.
	for rest := string(body); ; {
		pair, sep := rest, ""
		if i := strings.IndexAny(rest, "&;"); i >= 0 {
			pair, sep, rest = rest[:i], rest[i:i+1], rest[i+1:]
		}
		out.WriteString(redactPair(form, pair))
		if sep == "" {
			break
		}
		out.WriteString(sep)
	}
	return form, []byte(out.String())
}

// redactPair adds one key=value field to form, secrets replaced, and
// returns the field as it goes into the recorded body.
func redactPair(form url.Values, pair string) string {
	if pair == "" {
		return pair
	}
	rawKey, rawVal, _ := strings.Cut(pair, "=")
	if strings.ContainsFunc(rawKey, notFormKeyRune) {
		// Not a form field (a JSON or multipart body, say) but text that
		// may hold a secret under another syntax: keep none of it.
		return url.QueryEscape(redacted)
	}
	key, err1 := url.QueryUnescape(rawKey)
	val, err2 := url.QueryUnescape(rawVal)
	if err1 != nil || err2 != nil {
		// Unparseable: keep the key, never the value.
		return rawKey + "=" + url.QueryEscape(redacted)
	}
	switch {
	case secretFields[key]:
		val = redacted
		pair = rawKey + "=" + url.QueryEscape(val)
	case tokenFields[key]:
		val = tokenSummary(val)
		pair = rawKey + "=" + url.QueryEscape(val)
	}
	form.Add(key, val)
	return pair
}

// notFormKeyRune reports a character that a form encoder escapes in a field
// name: quotes, braces, white space and the like.
func notFormKeyRune(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-._~%+*[]", r))
}

// redactQuery returns q with the secrets and tokens of form fields
// replaced: a client may send them in the query string, which the STS
// refuses without reading.
func redactQuery(q url.Values) url.Values {
	for k, vals := range q {
		for i, v := range vals {
			switch {
			case secretFields[k]:
				vals[i] = redacted
			case tokenFields[k]:
				vals[i] = tokenSummary(v)
			}
		}
	}
	return q
}

// redactHeader clones h with credentials replaced by a summary.
func redactHeader(h http.Header) http.Header {
	out := h.Clone()
	if out == nil {
		return http.Header{}
	}
	for _, k := range []string{"Authorization", "Proxy-Authorization"} {
		vals := out.Values(k)
		if len(vals) == 0 {
			continue
		}
		red := make([]string, len(vals))
		for i, v := range vals {
			red[i] = redactCredential(v)
		}
		out[k] = red
	}
	if out.Get("Cookie") != "" {
		out.Set("Cookie", redacted)
	}
	return out
}

// redactCredential turns "Bearer <jwt>" into "Bearer <use=X jti=Y>".
func redactCredential(v string) string {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok {
		return redacted
	}
	if !strings.EqualFold(scheme, "Bearer") {
		return scheme + " " + redacted
	}
	return scheme + " " + tokenSummary(strings.TrimSpace(cred))
}

// tokenSummary names a token by its unverified use and jti claims.
func tokenSummary(tok string) string {
	m, ok := unverifiedClaims(tok)
	if !ok {
		return "<opaque>"
	}
	var use, jti string
	_ = json.Unmarshal(m["use"], &use)
	_ = json.Unmarshal(m["jti"], &jti)
	return "<use=" + use + " jti=" + jti + ">"
}

// statusWriter captures the status a handler answers with and reports it
// once, at commit time.
type statusWriter struct {
	http.ResponseWriter
	once     sync.Once
	onCommit func(status int)
	status   int
	// closed is the stack's context. Once it is done, an answer that has
	// not begun never does: WriteHeader, Write and Flush are refused.
	closed context.Context
	// answered reports that an answer began before the stack closed.
	answered bool
}

// refuse reports whether the stack closed before the answer began; the
// first call that answers marks the request answered.
func (w *statusWriter) refuse() bool {
	if w.answered {
		return false
	}
	if w.closed != nil && w.closed.Err() != nil {
		w.commit(0)
		return true
	}
	w.answered = true
	return false
}

// commit reports status as the request's outcome unless one was already
// reported.
func (w *statusWriter) commit(status int) {
	w.once.Do(func() {
		w.status = status
		if w.onCommit != nil {
			w.onCommit(status)
		}
	})
}

func (w *statusWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		if w.refuse() {
			return
		}
		w.commit(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.refuse() {
		return 0, errStackClosed
	}
	w.commit(http.StatusOK)
	return w.ResponseWriter.Write(b)
}

// Flush commits the status (200 if none was written) and flushes.
func (w *statusWriter) Flush() {
	if w.refuse() {
		return
	}
	w.commit(http.StatusOK)
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands the connection over; the request is recorded with status 0
// unless a status was committed before.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.commit(0)
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
