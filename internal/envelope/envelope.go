// Package envelope is the codec of the Caracal envelope (PROTOCOL §7): the
// trace context, the Caracal baggage members and the bearer a request
// carries, plus the client-side Gateway route decision of §8.1.
//
// Extract parses inbound headers strictly and reports what it refused as
// Problems, so a caller can refuse a malformed envelope as a whole instead
// of binding half of it. Inject writes the outgoing headers; it never writes
// Authorization, because where a credential goes is the caller's decision.
//
//	env, problems := envelope.Extract(r.Header)
//	if problems != 0 { ... log once, or refuse ... }
//	envelope.Inject(out.Header, env, true)
//
// Everything here is pure and safe for concurrent use; the hot paths
// allocate little (see the benchmarks).
package envelope

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/caracal-go/caracal/internal/wire"
)

// Envelope is the propagated context of one request (PROTOCOL §7.1), minus
// the process-local fields (zone, application, own-token flag) that never
// travel.
//
// Its String, GoString and LogValue methods never show Token.
type Envelope struct {
	// Token is the bearer from Authorization. Inject never writes it.
	Token string

	TraceID    string // 32 lowercase hex, or "" when there was no valid traceparent
	TraceFlags string // 2 lowercase hex, or ""
	TraceState string // verbatim

	SessionID          string // caracal.agent_session
	DelegationID       string // caracal.delegation_edge
	ParentDelegationID string // caracal.parent_edge
	SubjectRecordID    string // caracal.session (the subject authority-record id)
	Hop                int    // caracal.hop, 0..MaxHop on extraction

	// Baggage holds the non-Caracal members in first-seen order; each key
	// occurs once.
	Baggage []Member
}

// Problems is a set of the irregularities Extract found. Each was handled
// by ignoring the offending part, so the Envelope is always consistent; a
// strict caller refuses the request when Problems is non-zero, a lenient
// one logs it.
type Problems uint16

// The problems Extract reports.
const (
	// AuthorizationInvalid: a non-empty Authorization that is not
	// "Bearer <token>", or more than one Authorization header. Token is "".
	AuthorizationInvalid Problems = 1 << iota
	// TraceparentInvalid: a traceparent that breaks a §7.3 rule, or more
	// than one. TraceID and TraceFlags are "".
	TraceparentInvalid
	// TracestateInvalid: a tracestate over MaxTracestateBytes or with
	// control characters. TraceState is "".
	TracestateInvalid
	// BaggageTooLarge: the baggage is over MaxBaggageBytes and was ignored
	// entirely.
	BaggageTooLarge
	// BaggageTooManyMembers: the baggage has over MaxBaggageMembers members
	// and was ignored entirely.
	BaggageTooManyMembers
	// BaggageMember: a member without "=" after a non-empty key, or with a
	// key that is not a token, was skipped.
	BaggageMember
	// HopInvalid: caracal.hop had a non-digit; Hop is 0.
	HopInvalid
	// HopClamped: caracal.hop was over MaxHop; Hop is MaxHop.
	HopClamped
	// CaracalConflict: a caracal.* member was repeated with another value
	// (the last one is kept): the baggage names two identities.
	CaracalConflict
	// IDInvalid: a caracal.* id member was not of the Coordinator's id form
	// (wire.ValidID) and was ignored.
	IDInvalid
)

// BaggageIgnored is the set of problems that made Extract ignore the whole
// baggage.
const BaggageIgnored = BaggageTooLarge | BaggageTooManyMembers

// MaxTracestateBytes is the longest inbound tracestate (all headers joined
// with ",") that is kept. W3C asks for 512 at least; this bound only stops
// a hostile header from being amplified downstream.
const MaxTracestateBytes = 8192

var problemNames = [...]string{
	"invalid Authorization",
	"invalid traceparent",
	"invalid tracestate",
	"baggage over 8192 bytes ignored",
	"baggage over 64 members ignored",
	"malformed baggage member skipped",
	"invalid caracal.hop",
	"caracal.hop clamped to 10",
	"caracal.* member repeated with another value",
	"caracal.* id of the wrong form ignored",
}

// Has reports whether p contains every problem in q.
func (p Problems) Has(q Problems) bool { return p&q == q }

// String lists the problems, separated by "; ".
func (p Problems) String() string {
	if p == 0 {
		return "none"
	}
	var b strings.Builder
	for i, name := range problemNames {
		if p&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(name)
		}
	}
	if rest := p &^ (1<<len(problemNames) - 1); rest != 0 {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString("problems(0x" + strconv.FormatUint(uint64(rest), 16) + ")")
	}
	return b.String()
}

// Canonical header keys, used to index http.Header directly (no
// canonicalisation per call).
const (
	headerAuthorization = "Authorization"
	headerTraceparent   = "Traceparent"
	headerTracestate    = "Tracestate"
	headerBaggage       = "Baggage"
)

// Extract parses the envelope of an inbound request (PROTOCOL §7.3):
//
//   - Authorization: "Bearer" (any case), one or more spaces, then the token,
//     on the trimmed value (the regex ^(?i:bearer) +(.+)$).
//   - traceparent: see ParseTraceparent; the span id is discarded.
//   - tracestate: trimmed and kept verbatim; repeated headers are joined
//     with "," as W3C requires. It is read only with a valid traceparent.
//   - baggage: repeated headers are joined with ","; over MaxBaggageBytes or
//     MaxBaggageMembers it is ignored entirely; each member is key=value,
//     properties dropped, the value trimmed and percent-decoded (see
//     DecodeValue); empty values count as absent; a repeated key keeps its
//     first position and last value. caracal.* members fill the id fields
//     and Hop (unknown caracal.* keys are dropped), and one repeated with
//     another value is reported as CaracalConflict; an id not of the
//     Coordinator's id form is ignored and reported as IDInvalid; the
//     others go to Baggage.
//
// Extract never fails: what it cannot use it ignores and reports in the
// returned Problems. h is read with canonical keys only, as net/http stores
// them.
func Extract(h http.Header) (Envelope, Problems) {
	var e Envelope
	var p Problems

	if v := h[headerAuthorization]; len(v) > 1 {
		p |= AuthorizationInvalid
	} else if len(v) == 1 {
		tok, ok := parseBearer(v[0])
		e.Token = tok
		if !ok {
			p |= AuthorizationInvalid
		}
	}

	if v := h[headerTraceparent]; len(v) > 1 {
		p |= TraceparentInvalid
	} else if len(v) == 1 && strings.TrimSpace(v[0]) != "" {
		traceID, _, flags, ok := ParseTraceparent(v[0])
		if ok {
			e.TraceID, e.TraceFlags = traceID, flags
		} else {
			p |= TraceparentInvalid
		}
	}

	// A tracestate belongs to the trace its traceparent names: without a
	// valid traceparent it is not read (W3C Trace Context), so that it is
	// never sent on with the new trace the receiver starts.
	if v := h[headerTracestate]; len(v) > 0 && e.TraceID != "" {
		if ts, ok := tracestate(v); ok {
			e.TraceState = ts
		} else {
			p |= TracestateInvalid
		}
	}

	if v := h[headerBaggage]; len(v) > 0 {
		hopSet := false
		set := func(field *string, value string) {
			if !wire.ValidID(value) {
				// Another value names no session or edge, and bound it
				// would travel on in headers.
				p |= IDInvalid
				return
			}
			if *field != "" && *field != value {
				p |= CaracalConflict
			}
			*field = value
		}
		p |= eachMember(v, func(key, value string) {
			if !IsCaracalKey(key) {
				e.Baggage = setMember(e.Baggage, key, value)
				return
			}
			switch key {
			case KeySession:
				set(&e.SessionID, value)
			case KeyDelegation:
				set(&e.DelegationID, value)
			case KeyParentDelegation:
				set(&e.ParentDelegationID, value)
			case KeySubjectRecord:
				set(&e.SubjectRecordID, value)
			case KeyHop:
				hop, hp := parseHop(value)
				if hopSet && hop != e.Hop {
					p |= CaracalConflict
				}
				e.Hop, hopSet = hop, true
				p |= hp
			}
		})
	}
	return e, p
}

// parseBearer implements ^(?i:bearer) +(.+)$ on the trimmed value without
// regexp. ok is false for a non-empty value that does not match; "." does
// not match a line break, so a token containing one is refused.
func parseBearer(v string) (token string, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", true
	}
	const scheme = "bearer"
	if len(v) < len(scheme)+2 || !strings.EqualFold(v[:len(scheme)], scheme) || v[len(scheme)] != ' ' {
		return "", false
	}
	token = strings.TrimLeft(v[len(scheme):], " ")
	// Two IndexByte scans: ContainsAny walks a JWT byte by byte.
	if token == "" || strings.IndexByte(token, '\r') >= 0 || strings.IndexByte(token, '\n') >= 0 {
		return "", false
	}
	return token, true
}

// tracestate joins repeated headers with "," and trims the result. Several
// headers are sized before they are joined, so a flood of them is never
// copied.
func tracestate(vs []string) (string, bool) {
	var ts string
	if len(vs) == 1 {
		ts = strings.TrimSpace(vs[0])
	} else {
		n := len(vs) - 1
		for _, v := range vs {
			n += len(v)
		}
		if n > MaxTracestateBytes {
			return "", false
		}
		ts = strings.TrimSpace(strings.Join(vs, ","))
	}
	return ts, validTracestate(ts)
}

// validTracestate bounds the size and refuses control characters other than
// tab, which net/http would refuse to send anyway.
func validTracestate(s string) bool {
	if len(s) > MaxTracestateBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// Inject writes e's envelope headers into h (PROTOCOL §7.2). Authorization
// is never written.
//
// With merge (the transport form) an existing valid traceparent is kept,
// tracestate is set only when h has none, and the request's own baggage
// members are kept over e's non-Caracal ones (see MergeBaggage, also for
// how the baggage is kept within the receiver's caps). Without
// merge (the Headers form) traceparent and baggage are always replaced and
// tracestate is replaced when e has one.
//
// A fresh traceparent is 00-<e.TraceID or a fresh random id>-<fresh span
// id>-<e.TraceFlags or 01>. Baggage is deleted from h when there is nothing
// to send. h must not be nil; it is written with canonical keys.
func Inject(h http.Header, e Envelope, merge bool) {
	keepTraceparent := merge && validTraceparentValues(h[headerTraceparent])
	setTracestate := e.TraceState != "" && (!merge || !hasNonEmpty(h[headerTracestate]))
	var existing []string
	if merge {
		existing = h[headerBaggage]
	}

	var buf [16]Member
	ms := collectBaggage(buf[:0], &e, existing)
	bagLen := 0
	if len(ms) > 0 {
		bagLen = encodedBaggageLen(ms)
		if len(ms) > MaxBaggageMembers || bagLen > MaxBaggageBytes {
			ms = fitCaps(ms)
			bagLen = encodedBaggageLen(ms)
		}
		sortMembers(ms)
	}

	// Both values share one allocation, and the header slices another.
	var b strings.Builder
	n := bagLen
	if !keepTraceparent {
		n += traceparentLen
	}
	b.Grow(n)
	if !keepTraceparent {
		var tp [traceparentLen]byte
		b.Write(appendTraceparent(tp[:0], e.TraceID, e.TraceFlags))
	}
	writeBaggage(&b, ms)
	s := b.String()

	count := 0
	if !keepTraceparent {
		count++
	}
	if setTracestate {
		count++
	}
	if bagLen > 0 {
		count++
	}
	if count == 0 {
		delete(h, headerBaggage)
		return
	}
	vs := make([]string, count)
	i := 0
	if !keepTraceparent {
		vs[i] = s[:traceparentLen]
		h[headerTraceparent] = vs[i : i+1 : i+1]
		s = s[traceparentLen:]
		i++
	}
	if setTracestate {
		vs[i] = e.TraceState
		h[headerTracestate] = vs[i : i+1 : i+1]
		i++
	}
	if bagLen > 0 {
		vs[i] = s
		h[headerBaggage] = vs[i : i+1 : i+1]
	} else {
		delete(h, headerBaggage)
	}
}

// validTraceparentValues reports whether vs is exactly one valid
// traceparent.
func validTraceparentValues(vs []string) bool {
	if len(vs) != 1 {
		return false
	}
	_, _, _, ok := ParseTraceparent(vs[0])
	return ok
}

func hasNonEmpty(vs []string) bool {
	for _, v := range vs {
		if strings.TrimSpace(v) != "" {
			return true
		}
	}
	return false
}

// String returns a description of e for debugging; the token is redacted.
func (e Envelope) String() string {
	var b strings.Builder
	b.WriteString("envelope{")
	if e.Token != "" {
		b.WriteString("token:[redacted] ")
	}
	b.WriteString("trace:" + e.TraceID + "/" + e.TraceFlags)
	for _, f := range [...]struct{ k, v string }{
		{"tracestate", e.TraceState},
		{"session", e.SessionID},
		{"delegation", e.DelegationID},
		{"parent_delegation", e.ParentDelegationID},
		{"subject_record", e.SubjectRecordID},
	} {
		if f.v != "" {
			b.WriteString(" " + f.k + ":" + strconv.Quote(f.v))
		}
	}
	b.WriteString(" hop:" + strconv.Itoa(e.Hop))
	if len(e.Baggage) > 0 {
		b.WriteString(" baggage:" + strconv.Itoa(len(e.Baggage)))
	}
	b.WriteString("}")
	return b.String()
}

// GoString is String, so %#v does not show the token either.
func (e Envelope) GoString() string { return e.String() }

// LogValue logs e without its token.
func (e Envelope) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("token", e.Token != ""),
		slog.String("trace_id", e.TraceID),
		slog.String("session_id", e.SessionID),
		slog.String("delegation_id", e.DelegationID),
		slog.String("parent_delegation_id", e.ParentDelegationID),
		slog.String("subject_record_id", e.SubjectRecordID),
		slog.Int("hop", e.Hop),
		slog.Int("baggage", len(e.Baggage)),
	)
}
