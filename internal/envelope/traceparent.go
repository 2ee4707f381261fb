package envelope

import (
	"math/rand/v2"
	"strings"
)

const hexDigits = "0123456789abcdef"

// traceparentLen is the length of a version-00 traceparent value:
// 2 + 1 + 32 + 1 + 16 + 1 + 2.
const traceparentLen = 55

// defaultFlags are the trace flags written when the envelope has none
// (sampled).
const defaultFlags = "01"

// isLowerHex reports whether s is non-empty and made of lowercase hex digits
// only; uppercase is refused because W3C Trace Context requires lowercase.
func isLowerHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// allZero reports whether s consists of '0' only.
func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}

// ValidTraceID reports whether s is a usable W3C trace id: 32 lowercase hex
// digits, not all zero.
func ValidTraceID(s string) bool {
	return len(s) == 32 && isLowerHex(s) && !allZero(s)
}

// ValidSpanID reports whether s is a usable W3C parent (span) id: 16
// lowercase hex digits, not all zero.
func ValidSpanID(s string) bool {
	return len(s) == 16 && isLowerHex(s) && !allZero(s)
}

// ValidTraceFlags reports whether s is two lowercase hex digits.
func ValidTraceFlags(s string) bool {
	return len(s) == 2 && isLowerHex(s)
}

// appendHex64 appends v as 16 lowercase hex digits.
func appendHex64(dst []byte, v uint64) []byte {
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[(v>>uint(shift))&0xf])
	}
	return dst
}

// randNonZero returns a random non-zero uint64. math/rand/v2's top-level
// source is a per-thread ChaCha8 generator seeded from the OS: safe for
// concurrent use, unpredictable enough for trace ids, and allocation free.
func randNonZero() uint64 {
	for {
		if v := rand.Uint64(); v != 0 {
			return v
		}
	}
}

// NewTraceID returns a fresh random trace id (32 lowercase hex, never all
// zero).
func NewTraceID() string {
	var b [32]byte
	appendTraceID(b[:0])
	return string(b[:])
}

// appendTraceID appends a fresh random trace id. The high half may be zero;
// the low half never is, so the whole id is never all zero.
func appendTraceID(dst []byte) []byte {
	dst = appendHex64(dst, rand.Uint64())
	return appendHex64(dst, randNonZero())
}

// ParseTraceparent parses a traceparent header value (PROTOCOL §7.3): after
// trimming, the value split on "-" has at least 4 parts; the version is two
// lowercase hex digits other than "ff"; version "00" has exactly 4 parts
// (higher versions may carry more); the trace id is 32 and the span id 16
// lowercase hex digits, neither all zero; the flags are two lowercase hex
// digits. ok is false when any rule fails. Of a higher version's flags only
// the sampled bit is read (W3C Trace Context, versioning of traceparent):
// flags is "00" or "01", since the others may mean something else there and
// are reserved in the version-00 traceparent built from them.
func ParseTraceparent(s string) (traceID, spanID, flags string, ok bool) {
	s = strings.TrimSpace(s)
	// Every part before the flags is fixed-width hex, which never contains
	// "-", so fixed offsets are equivalent to splitting on "-".
	if len(s) < traceparentLen ||
		s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return "", "", "", false
	}
	version := s[0:2]
	if !isLowerHex(version) || version == "ff" {
		return "", "", "", false
	}
	if len(s) > traceparentLen {
		// A longer flags part, or extra parts on version 00, is invalid.
		if version == "00" || s[traceparentLen] != '-' {
			return "", "", "", false
		}
	}
	traceID, spanID, flags = s[3:35], s[36:52], s[53:55]
	if !ValidTraceID(traceID) || !ValidSpanID(spanID) || !ValidTraceFlags(flags) {
		return "", "", "", false
	}
	if version != "00" {
		flags = sampledOnly(flags)
	}
	return traceID, spanID, flags, true
}

// sampledOnly returns valid flags with every bit but sampled cleared.
func sampledOnly(flags string) string {
	if v, _ := unhex(flags[1]); v&1 != 0 {
		return "01"
	}
	return "00"
}

// Traceparent returns a fresh version-00 traceparent for a new outgoing
// span (PROTOCOL §7.2 rule 1): traceID if it is valid, else a fresh random
// one; a fresh random span id; flags if they are two lowercase hex digits,
// else "01".
func Traceparent(traceID, flags string) string {
	var b [traceparentLen]byte
	appendTraceparent(b[:0], traceID, flags)
	return string(b[:])
}

// appendTraceparent appends the value Traceparent returns.
func appendTraceparent(dst []byte, traceID, flags string) []byte {
	dst = append(dst, "00-"...)
	if ValidTraceID(traceID) {
		dst = append(dst, traceID...)
	} else {
		dst = appendTraceID(dst)
	}
	dst = append(dst, '-')
	dst = appendHex64(dst, randNonZero())
	dst = append(dst, '-')
	if !ValidTraceFlags(flags) {
		flags = defaultFlags
	}
	return append(dst, flags...)
}
