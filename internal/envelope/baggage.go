package envelope

import (
	"slices"
	"strconv"
	"strings"
)

// Caps and limits of PROTOCOL §7.3.
const (
	// MaxBaggageBytes is the largest inbound baggage (all headers joined
	// with ",") that is parsed; a longer one is ignored entirely.
	MaxBaggageBytes = 8192
	// MaxBaggageMembers is the largest number of comma-separated inbound
	// members that is parsed; more and the baggage is ignored entirely.
	MaxBaggageMembers = 64
	// MaxHop is the clamp applied to an inbound caracal.hop.
	MaxHop = 10
)

// The Caracal baggage keys (PROTOCOL §7.2 rule 3).
const (
	KeySession          = "caracal.agent_session"   // Envelope.SessionID
	KeyDelegation       = "caracal.delegation_edge" // Envelope.DelegationID
	KeyParentDelegation = "caracal.parent_edge"     // Envelope.ParentDelegationID
	KeySubjectRecord    = "caracal.session"         // Envelope.SubjectRecordID
	KeyHop              = "caracal.hop"             // Envelope.Hop

	caracalPrefix = "caracal."
)

// IsCaracalKey reports whether key is in the reserved caracal.* namespace.
// The comparison is byte-exact, as on the servers.
func IsCaracalKey(key string) bool {
	return strings.HasPrefix(key, caracalPrefix)
}

// Member is one W3C baggage list member. Value is the decoded value;
// properties are not kept.
type Member struct {
	Key, Value string
}

// tchar is the RFC 9110 token alphabet, which W3C baggage uses for keys.
var tchar = [256]bool{
	'!': true, '#': true, '$': true, '%': true, '&': true, '\'': true, '*': true,
	'+': true, '-': true, '.': true, '^': true, '_': true, '`': true, '|': true, '~': true,
	'0': true, '1': true, '2': true, '3': true, '4': true, '5': true, '6': true, '7': true, '8': true, '9': true,
	'A': true, 'B': true, 'C': true, 'D': true, 'E': true, 'F': true, 'G': true, 'H': true, 'I': true,
	'J': true, 'K': true, 'L': true, 'M': true, 'N': true, 'O': true, 'P': true, 'Q': true, 'R': true,
	'S': true, 'T': true, 'U': true, 'V': true, 'W': true, 'X': true, 'Y': true, 'Z': true,
	'a': true, 'b': true, 'c': true, 'd': true, 'e': true, 'f': true, 'g': true, 'h': true, 'i': true,
	'j': true, 'k': true, 'l': true, 'm': true, 'n': true, 'o': true, 'p': true, 'q': true, 'r': true,
	's': true, 't': true, 'u': true, 'v': true, 'w': true, 'x': true, 'y': true, 'z': true,
}

// ValidKey reports whether key can be written as a baggage key (a non-empty
// RFC 9110 token). Members with other keys are refused on decode and skipped
// on encode, because they could not be re-emitted without corrupting the
// header.
func ValidKey(key string) bool {
	if key == "" {
		return false
	}
	for i := 0; i < len(key); i++ {
		if !tchar[key[i]] {
			return false
		}
	}
	return true
}

// unreservedSet marks the bytes the encoder writes as themselves.
var unreservedSet = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~'
	}
	return t
}()

// unreserved reports whether c is written as itself by the encoder.
func unreserved(c byte) bool { return unreservedSet[c] }

// encodedLen returns the length of v once percent-encoded.
func encodedLen(v string) int {
	n := len(v)
	for i := 0; i < len(v); i++ {
		if !unreserved(v[i]) {
			n += 2
		}
	}
	return n
}

const upperHex = "0123456789ABCDEF"

// writeEncoded writes v percent-encoded: every byte except A–Z a–z 0–9
// - . _ ~ becomes %XX with uppercase hex.
func writeEncoded(b *strings.Builder, v string) {
	start := 0
	for i := 0; i < len(v); i++ {
		if c := v[i]; !unreserved(c) {
			b.WriteString(v[start:i])
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&0xf])
			start = i + 1
		}
	}
	b.WriteString(v[start:])
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// DecodeValue percent-decodes s once: "%XX" (either case) becomes the byte,
// "+" stays "+", and an escape that is not followed by two hex digits is
// kept as it is. It allocates only when s contains a valid escape.
func DecodeValue(s string) string {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s
	}
	var b []byte
	for ; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				if b == nil {
					b = make([]byte, 0, len(s))
					b = append(b, s[:i]...)
				}
				b = append(b, hi<<4|lo)
				i += 2
				continue
			}
		}
		if b != nil {
			b = append(b, s[i])
		}
	}
	if b == nil {
		return s
	}
	return string(b)
}

// baggageCaps checks the §7.3 caps on the headers as if joined with ",".
func baggageCaps(values []string) Problems {
	if len(values) == 0 {
		return 0
	}
	size := len(values) - 1
	members := len(values) // commas in the joined value + 1
	for _, v := range values {
		size += len(v)
		members += strings.Count(v, ",")
	}
	var p Problems
	if size > MaxBaggageBytes {
		p |= BaggageTooLarge
	}
	if members > MaxBaggageMembers {
		p |= BaggageTooManyMembers
	}
	return p
}

// parseMember splits one raw list member into its key and decoded value.
// skip reports a member that is silently ignored (empty, or an empty value,
// which counts as absent); bad reports a malformed one.
func parseMember(m string) (key, value string, skip, bad bool) {
	m = strings.TrimSpace(m)
	if m == "" {
		return "", "", true, false
	}
	eq := strings.IndexByte(m, '=')
	if eq <= 0 {
		return "", "", false, true
	}
	key = strings.TrimSpace(m[:eq])
	if !ValidKey(key) {
		return "", "", false, true
	}
	value = m[eq+1:]
	if semi := strings.IndexByte(value, ';'); semi >= 0 {
		value = value[:semi] // properties are dropped
	}
	value = DecodeValue(strings.TrimSpace(value))
	if value == "" {
		return "", "", true, false
	}
	return key, value, false, false
}

// eachMember calls fn for every well-formed member of the baggage headers
// (as if joined with ","), in order, unless a cap is exceeded, in which case
// nothing is parsed. It reports the problems it found.
func eachMember(values []string, fn func(key, value string)) Problems {
	p := baggageCaps(values)
	if p != 0 {
		return p
	}
	for _, v := range values {
		for v != "" {
			var m string
			m, v, _ = strings.Cut(v, ",")
			key, value, skip, bad := parseMember(m)
			if bad {
				p |= BaggageMember
			}
			if skip || bad {
				continue
			}
			fn(key, value)
		}
	}
	return p
}

// setMember sets key to value in ms: a present key keeps its position and
// takes the new value, a new key is appended.
func setMember(ms []Member, key, value string) []Member {
	for i := range ms {
		if ms[i].Key == key {
			ms[i].Value = value
			return ms
		}
	}
	return append(ms, Member{key, value})
}

// parseHop parses caracal.hop: ASCII digits only (else 0 and HopInvalid),
// clamped to MaxHop (HopClamped), numeric overflow included.
func parseHop(v string) (int, Problems) {
	n := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, HopInvalid
		}
		if n <= MaxHop {
			n = n*10 + int(c-'0')
		}
	}
	if n > MaxHop {
		return MaxHop, HopClamped
	}
	return n, 0
}

func compareKeys(a, b Member) int { return strings.Compare(a.Key, b.Key) }

// encodeSorted sorts ms in place and encodes them; keys are unique, valid
// and values non-empty.
func encodeSorted(ms []Member) string {
	if len(ms) == 0 {
		return ""
	}
	sortMembers(ms)
	var b strings.Builder
	b.Grow(encodedBaggageLen(ms))
	writeBaggage(&b, ms)
	return b.String()
}

// sortMembers sorts by key in byte order; keys are unique, so stability
// does not matter.
func sortMembers(ms []Member) { slices.SortFunc(ms, compareKeys) }

// writeBaggage writes sorted members as key=value joined with ",".
func writeBaggage(b *strings.Builder, ms []Member) {
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(m.Key)
		b.WriteByte('=')
		writeEncoded(b, m.Value)
	}
}

func encodedBaggageLen(ms []Member) int {
	n := len(ms) - 1
	for _, m := range ms {
		n += len(m.Key) + 1 + encodedLen(m.Value)
	}
	return n
}

// MergeBaggage returns the baggage header value an outgoing request carries
// (PROTOCOL §7.2 rule 3): e's non-Caracal members, overlaid with the members
// already on the request (existing, decoded by the §7.3 rules; nil in the
// non-merge form), every caracal.* key removed, then the Caracal members set
// from e's fields. caracal.hop is written only when e.Hop > 0 or one of the
// four ids is set; a negative hop counts as 0. The result is "" when there
// is nothing to send.
//
// The result stays within the caps a receiver applies (MaxBaggageMembers,
// MaxBaggageBytes), which would otherwise make it ignore the whole header,
// Caracal members included: the non-Caracal members that do not fit are
// left out, the request's own having priority over e's, and within each the
// earlier ones over the later ones.
func MergeBaggage(e Envelope, existing []string) string {
	var buf [16]Member
	ms := collectBaggage(buf[:0], &e, existing)
	if len(ms) > 0 {
		if n := encodedBaggageLen(ms); len(ms) > MaxBaggageMembers || n > MaxBaggageBytes {
			ms = fitCaps(ms)
		}
	}
	return encodeSorted(ms)
}

// collectBaggage gathers the members MergeBaggage encodes into ms: the
// request's own first, then e's that the request does not override, then
// the Caracal ones. fitCaps relies on that order.
func collectBaggage(ms []Member, e *Envelope, existing []string) []Member {
	if len(existing) > 0 {
		eachMember(existing, func(key, value string) {
			if !IsCaracalKey(key) {
				ms = setMember(ms, key, value)
			}
		})
	}
	own := len(ms)
	for _, m := range e.Baggage {
		if m.Value != "" && !IsCaracalKey(m.Key) && ValidKey(m.Key) {
			if !hasKey(ms[:own], m.Key) {
				ms = setMember(ms, m.Key, m.Value)
			}
		}
	}
	ids := false
	for _, f := range [...]struct{ key, value string }{
		{KeySession, e.SessionID},
		{KeyDelegation, e.DelegationID},
		{KeyParentDelegation, e.ParentDelegationID},
		{KeySubjectRecord, e.SubjectRecordID},
	} {
		if f.value != "" {
			ids = true
			ms = append(ms, Member{f.key, f.value})
		}
	}
	if e.Hop > 0 || ids {
		ms = append(ms, Member{KeyHop, hopString(e.Hop)})
	}
	return ms
}

func hasKey(ms []Member, key string) bool {
	for _, m := range ms {
		if m.Key == key {
			return true
		}
	}
	return false
}

// fitCaps drops the non-Caracal members of ms that would push the encoded
// baggage over MaxBaggageMembers or MaxBaggageBytes: the Caracal members are
// always kept, then every other one that still fits, in the order of ms.
// W3C Baggage lets a sender leave out whole members it cannot propagate.
// ms is filtered in place.
func fitCaps(ms []Member) []Member {
	n, count := -1, 0 // the encoded length, commas included, and the members kept
	for _, m := range ms {
		if IsCaracalKey(m.Key) {
			n += len(m.Key) + 1 + encodedLen(m.Value) + 1
			count++
		}
	}
	out := ms[:0]
	for _, m := range ms {
		if !IsCaracalKey(m.Key) {
			size := len(m.Key) + 1 + encodedLen(m.Value) + 1
			if count >= MaxBaggageMembers || n+size > MaxBaggageBytes {
				continue
			}
			n += size
			count++
		}
		out = append(out, m)
	}
	clear(ms[len(out):])
	return out
}

// hopStrings avoids formatting the common hop values.
var hopStrings = [...]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"}

func hopString(h int) string {
	if h < 0 {
		h = 0
	}
	if h < len(hopStrings) {
		return hopStrings[h]
	}
	return strconv.Itoa(h)
}
