package envelope

// The encoders and decoders below are the codec's rules in their plainest
// form, for the tests to check the header paths against; the SDK itself
// encodes and decodes through Inject and Extract.

// appendEncoded appends v percent-encoded: every byte except A–Z a–z 0–9
// - . _ ~ becomes %XX with uppercase hex.
func appendEncoded(dst []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if unreserved(c) {
			dst = append(dst, c)
		} else {
			dst = append(dst, '%', upperHex[c>>4], upperHex[c&0xf])
		}
	}
	return dst
}

// EncodeValue percent-encodes a baggage value as the encoder does.
func EncodeValue(v string) string {
	if encodedLen(v) == len(v) {
		return v
	}
	return string(appendEncoded(make([]byte, 0, encodedLen(v)), v))
}

// DecodeBaggage decodes baggage header values (repeated headers are joined
// with ",") by the rules of PROTOCOL §7.3. It returns every member,
// caracal.* included, in first-seen order with the last value of a repeated
// key. Over a cap it returns no members and the cap's problem.
func DecodeBaggage(values []string) ([]Member, Problems) {
	var ms []Member
	p := eachMember(values, func(key, value string) {
		ms = setMember(ms, key, value)
	})
	return ms, p
}

// EncodeBaggage encodes ms as a baggage header value (PROTOCOL §7.2 rule 3):
// members with an empty value or an invalid key are dropped, a repeated key
// keeps its last value, members are sorted by key in byte order, joined
// with a bare ",", values percent-encoded. It does not enforce the inbound
// caps and does not treat caracal.* keys specially. ms is not modified.
func EncodeBaggage(ms []Member) string {
	var buf [16]Member
	out := buf[:0]
	for _, m := range ms {
		if m.Value != "" && ValidKey(m.Key) {
			out = setMember(out, m.Key, m.Value)
		}
	}
	return encodeSorted(out)
}

// NewSpanID returns a fresh random span id (16 lowercase hex, never all
// zero).
func NewSpanID() string {
	var b [16]byte
	appendHex64(b[:0], randNonZero())
	return string(b[:])
}

// FormatTraceparent returns "00-<traceID>-<spanID>-<flags>". It does not
// validate its arguments; use Traceparent to build a header from envelope
// values that may be missing or invalid.
func FormatTraceparent(traceID, spanID, flags string) string {
	return "00-" + traceID + "-" + spanID + "-" + flags
}
