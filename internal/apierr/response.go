package apierr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/caracal-go/caracal/internal/retry"
	"github.com/caracal-go/caracal/internal/wire"
)

// maxTextBody bounds how much of a non-JSON error body becomes Description.
const maxTextBody = 512

// ReadBody reads at most limit bytes of resp's body. An interim (1xx)
// status given as the final answer has no body: for a 101 Switching
// Protocols, net/http hands the raw connection over as the body, where no
// request deadline reaches, so a server that then stays silent would hold
// the read for ever. Nothing is read there; the status is the answer.
func ReadBody(resp *http.Response, limit int64) ([]byte, error) {
	if resp.StatusCode < 200 {
		return nil, nil
	}
	body := io.LimitReader(resp.Body, limit)
	if n := resp.ContentLength; n > 0 && n <= limit {
		// Sized once from the announced length (with the room ReadFrom
		// wants to see the end), where io.ReadAll grows its buffer from
		// 512 bytes: four times for a token answer.
		b := bytes.NewBuffer(make([]byte, 0, n+bytes.MinRead))
		_, err := b.ReadFrom(body)
		return b.Bytes(), err
	}
	return io.ReadAll(body)
}

// FromResponse builds the *Error for a non-success answer of service
// ("sts", "coordinator", "gateway") to method path, and returns the decoded
// body too (zero when it is not JSON). body is what the caller read (already
// size-capped). The request id comes from the body (requestId or
// request_id), else the X-Request-Id response header. The secrets of the
// request are redacted from the text the server supplied (see Redact),
// before a long text body is cut, so that no piece of one remains.
func FromResponse(service, method, path string, resp *http.Response, body []byte, secrets ...string) (*Error, wire.ErrorBody) {
	e := &Error{Service: service, Method: method, Path: path, StatusCode: resp.StatusCode}
	var eb wire.ErrorBody
	// A field of an unexpected type (a numeric zod path element, a
	// proxy's "details" string) is skipped, not a reason to drop the code
	// and request id the body does carry.
	var typeErr *json.UnmarshalTypeError
	if err := json.Unmarshal(body, &eb); (err == nil || errors.As(err, &typeErr)) && eb.Error != "" {
		// The server's text goes into messages and logs: one line, bounded,
		// cut only after the secrets were taken out.
		e.Code = printable([]byte(redact(eb.Error, secrets)), maxTextBody)
		text := eb.Text()
		if issues := eb.Details.Summary(3); issues != "" {
			// Which fields a schema refusal is about (Coordinator shape 2).
			text = strings.TrimPrefix(text+": "+issues, ": ")
		}
		e.Description = printable([]byte(redact(text, secrets)), maxTextBody)
		e.RequestID = printable([]byte(redact(eb.ID(), secrets)), maxTextBody)
	} else {
		eb = wire.ErrorBody{}
		e.Description = printable([]byte(redact(string(body), secrets)), maxTextBody)
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		e.Description = redirected(resp)
	}
	if e.RequestID == "" {
		e.RequestID = printable([]byte(redact(resp.Header.Get(wire.HeaderRequestID), secrets)), maxTextBody)
	}
	e.Redact(secrets...)
	if d, ok := retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		e.RetryAfter = d
	}
	return e, eb
}

// Redact replaces each non-empty secret, as is and form-encoded, in the
// text the server supplied, in case the server or a proxy in front of it
// echoed the request.
func (e *Error) Redact(secrets ...string) {
	e.Code = redact(e.Code, secrets)
	e.Description = redact(e.Description, secrets)
	e.RequestID = redact(e.RequestID, secrets)
}

// redact replaces each non-empty secret in text, as is and form-encoded.
func redact(text string, secrets []string) string {
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for _, v := range [...]string{s, url.QueryEscape(s)} {
			text = strings.ReplaceAll(text, v, "[redacted]")
		}
	}
	return text
}

// printable reduces a text body to one line of at most n printable bytes.
func printable(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	s = strings.Map(func(r rune) rune {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) > n {
		// Cut on a rune boundary.
		cut := n
		for cut > 0 && !utf8Start(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// Transport wraps a failure to get an answer at all (connection refused,
// reset, timeout) from service for method path. ctx is the caller's context
// and call the call's own, which bounds it to limit. When ctx ended, the
// error wraps ctx's cause: the caller gave up. Otherwise the service is
// unavailable: the error wraps ErrUnavailable and err, or, when the call ran
// out of its limit, context.DeadlineExceeded.
func Transport(ctx, call context.Context, limit time.Duration, service, method, path string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("caracal: %s %s %s: %w", service, method, path, context.Cause(ctx))
	}
	if call.Err() != nil {
		err = fmt.Errorf("no answer within %s: %w", limit, context.DeadlineExceeded)
	}
	return fmt.Errorf("caracal: %s %s %s: %w: %w", service, method, path, ErrUnavailable, HideURLUser(err))
}

// HideURLUser returns err with the URL of a *url.Error (what
// http.Client.Do returns) shown as ShowURL shows it: net/http masks a
// password there, but keeps a user part without one and the query, either
// of which can be a token. Its text is also cut to maxTextBody bytes: net/http
// quotes a malformed answer (a status line megabytes long) whole.
func HideURLUser(err error) error {
	if ue, ok := err.(*url.Error); ok {
		err = &url.Error{Op: ue.Op, URL: ShowURL(ue.URL), Err: ue.Err}
	}
	if err != nil && len(err.Error()) > maxTextBody {
		return boundedText{err}
	}
	return err
}

// boundedText is an error whose text is cut to one line of maxTextBody
// bytes; it unwraps to the whole error.
type boundedText struct{ err error }

func (e boundedText) Error() string { return printable([]byte(e.err.Error()), maxTextBody) }
func (e boundedText) Unwrap() error { return e.err }

// Approval builds the error for an STS interaction_required hold on a mint
// of scopes on resource. The secrets of the request are redacted from the
// fields taken from the body, as FromResponse does.
func Approval(e *Error, eb wire.ErrorBody, resource string, scopes []string, secrets ...string) *ApprovalRequiredError {
	a := &ApprovalRequiredError{
		Err:        e,
		ApprovalID: redact(eb.ApprovalID, secrets),
		Resource:   resource,
		Scopes:     wire.NormalizeScopes(scopes),
		State:      printable([]byte(redact(eb.State, secrets)), maxTextBody),
		Tier:       printable([]byte(redact(eb.Tier, secrets)), maxTextBody),
		Binding:    printable([]byte(redact(eb.Binding, secrets)), maxTextBody),
	}
	if t, err := wire.ParseTime(eb.ApprovalExpiresAt); err == nil {
		a.ExpiresAt = t
	}
	return a
}

// redirected describes a redirect answer, which no Caracal service gives and
// the SDK does not follow; the target shows as scheme and host only.
func redirected(resp *http.Response) string {
	to := "elsewhere"
	if u, err := resp.Location(); err == nil && u.Host != "" {
		// Server text: one line, bounded.
		to = printable([]byte(u.Scheme+"://"+u.Host), maxTextBody/2)
	}
	return "the service redirected the request to " + to + "; Caracal services never redirect, so it was not followed (no credential was sent there): check the configured URL"
}

// RedactURL hides a password in a URL's userinfo, for messages and logs:
// as url.URL.Redacted does, and also in a URL that does not parse. A user
// part without a password is hidden too: there it is often a token
// (https://TOKEN@host).
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err == nil && u.User != nil:
		if _, ok := u.User.Password(); !ok {
			u.User = url.User("xxxxx")
			return u.String()
		}
		return u.Redacted()
	case err == nil && u.Opaque == "":
		return raw
	}
	// Unparseable or opaque: still hide anything that looks like userinfo.
	if at := strings.LastIndexByte(raw, '@'); at >= 0 {
		start := strings.Index(raw, "://") + 3
		if start < 3 || start > at {
			start = 0
		}
		return raw[:start] + "xxxxx" + raw[at:]
	}
	return raw
}

// ShowURL is raw as messages and logs show it: its user part masked as
// RedactURL does, and the values of its query and its fragment too, which
// can carry a token (?access_token=...). Query keys stay, so the reader
// still sees what the URL holds.
func ShowURL(raw string) string {
	head, frag, hasFrag := strings.Cut(RedactURL(raw), "#")
	head, query, hasQuery := strings.Cut(head, "?")
	var b strings.Builder
	b.WriteString(head)
	if hasQuery {
		b.WriteByte('?')
		for n, param := range strings.Split(query, "&") {
			if n > 0 {
				b.WriteByte('&')
			}
			key, val, hasVal := strings.Cut(param, "=")
			switch {
			case hasVal && val != "":
				b.WriteString(key + "=xxxxx")
			case hasVal:
				b.WriteString(key + "=")
			case param != "":
				b.WriteString("xxxxx")
			}
		}
	}
	if hasFrag {
		b.WriteByte('#')
		if frag != "" {
			b.WriteString("xxxxx")
		}
	}
	return b.String()
}
