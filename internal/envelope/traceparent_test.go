package envelope

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	tTrace = "5f1c2b3a4d5e6f708192a3b4c5d6e7f8"
	tSpan  = "1a2b3c4d5e6f7081"
)

func TestParseTraceparent(t *testing.T) {
	zeros32 := strings.Repeat("0", 32)
	zeros16 := strings.Repeat("0", 16)
	tests := []struct {
		name, in     string
		trace, flags string
		ok           bool
	}{
		{"valid", "00-" + tTrace + "-" + tSpan + "-01", tTrace, "01", true},
		{"flags kept", "00-" + tTrace + "-" + tSpan + "-00", tTrace, "00", true},
		{"flags any hex", "00-" + tTrace + "-" + tSpan + "-a3", tTrace, "a3", true},
		{"trimmed", "  00-" + tTrace + "-" + tSpan + "-01\t", tTrace, "01", true},
		{"higher version exact", "01-" + tTrace + "-" + tSpan + "-01", tTrace, "01", true},
		{"higher version more parts", "cc-" + tTrace + "-" + tSpan + "-01-what-ever", tTrace, "01", true},
		{"higher version trailing dash", "cc-" + tTrace + "-" + tSpan + "-01-", tTrace, "01", true},
		{"higher version sampled bit only", "cc-" + tTrace + "-" + tSpan + "-ff-x", tTrace, "01", true},
		{"higher version unsampled", "01-" + tTrace + "-" + tSpan + "-a2", tTrace, "00", true},
		{"higher version flags uppercase", "01-" + tTrace + "-" + tSpan + "-0B", "", "", false},
		{"version 00 extra part", "00-" + tTrace + "-" + tSpan + "-01-x", "", "", false},
		{"version 00 trailing dash", "00-" + tTrace + "-" + tSpan + "-01-", "", "", false},
		{"version ff", "ff-" + tTrace + "-" + tSpan + "-01", "", "", false},
		{"version uppercase", "0A-" + tTrace + "-" + tSpan + "-01", "", "", false},
		{"version not hex", "0g-" + tTrace + "-" + tSpan + "-01", "", "", false},
		{"version long", "000-" + tTrace + "-" + tSpan + "-01", "", "", false},
		{"trace uppercase", "00-" + strings.ToUpper(tTrace) + "-" + tSpan + "-01", "", "", false},
		{"trace zero", "00-" + zeros32 + "-" + tSpan + "-01", "", "", false},
		{"trace short", "00-" + tTrace[1:] + "-" + tSpan + "-01", "", "", false},
		{"trace long", "00-" + tTrace + "0-" + tSpan + "-01", "", "", false},
		{"span zero", "00-" + tTrace + "-" + zeros16 + "-01", "", "", false},
		{"span uppercase", "00-" + tTrace + "-" + strings.ToUpper(tSpan) + "-01", "", "", false},
		{"span short", "00-" + tTrace + "-" + tSpan[1:] + "-01", "", "", false},
		{"flags uppercase", "00-" + tTrace + "-" + tSpan + "-0A", "", "", false},
		{"flags long", "00-" + tTrace + "-" + tSpan + "-011", "", "", false},
		{"flags long higher version", "01-" + tTrace + "-" + tSpan + "-011", "", "", false},
		{"flags short", "00-" + tTrace + "-" + tSpan + "-1", "", "", false},
		{"three parts", "00-" + tTrace + "-" + tSpan, "", "", false},
		{"empty", "", "", "", false},
		{"garbage", "hello", "", "", false},
		{"wrong separators", "00_" + tTrace + "_" + tSpan + "_01", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trace, span, flags, ok := ParseTraceparent(tt.in)
			require.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.trace, trace)
			assert.Equal(t, tt.flags, flags)
			if ok {
				assert.Equal(t, tSpan, span)
			}
		})
	}
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewTraceID()
		require.True(t, ValidTraceID(id), id)
		require.False(t, seen[id], "duplicate trace id")
		seen[id] = true
		s := NewSpanID()
		require.True(t, ValidSpanID(s), s)
	}
	assert.False(t, ValidTraceID(strings.Repeat("0", 32)))
	assert.False(t, ValidTraceID(strings.ToUpper(tTrace)))
	assert.False(t, ValidTraceID(tTrace+"0"))
	assert.False(t, ValidSpanID(strings.Repeat("0", 16)))
	assert.True(t, ValidTraceFlags("ff"))
	assert.False(t, ValidTraceFlags("FF"))
	assert.False(t, ValidTraceFlags("1"))
}

func TestTraceparent(t *testing.T) {
	tests := []struct {
		name, trace, flags string
		wantTrace          string // "" means fresh
		wantFlags          string
	}{
		{"context values", tTrace, "00", tTrace, "00"},
		{"default flags", tTrace, "", tTrace, "01"},
		{"invalid flags", tTrace, "1", tTrace, "01"},
		{"uppercase flags", tTrace, "0A", tTrace, "01"},
		{"no trace id", "", "01", "", "01"},
		{"uppercase trace id", strings.ToUpper(tTrace), "01", "", "01"},
		{"zero trace id", strings.Repeat("0", 32), "01", "", "01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := Traceparent(tt.trace, tt.flags)
			trace, span, flags, ok := ParseTraceparent(tp)
			require.True(t, ok, tp)
			assert.Equal(t, "00-", tp[:3])
			if tt.wantTrace != "" {
				assert.Equal(t, tt.wantTrace, trace)
			} else {
				assert.NotEqual(t, strings.ToLower(tt.trace), trace)
			}
			assert.Equal(t, tt.wantFlags, flags)
			assert.True(t, ValidSpanID(span))
			// A fresh span (and trace, when generated) per call.
			tp2 := Traceparent(tt.trace, tt.flags)
			_, span2, _, _ := ParseTraceparent(tp2)
			assert.NotEqual(t, span, span2)
		})
	}
	assert.Equal(t, "00-"+tTrace+"-"+tSpan+"-01", FormatTraceparent(tTrace, tSpan, "01"))
}
