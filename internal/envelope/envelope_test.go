package envelope

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const validTP = "00-" + tTrace + "-" + tSpan + "-01"

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestExtractAuthorization(t *testing.T) {
	tests := []struct {
		name  string
		vals  []string
		token string
		bad   bool
	}{
		{"absent", nil, "", false},
		{"bearer", []string{"Bearer abc.def.ghi"}, "abc.def.ghi", false},
		{"case insensitive", []string{"bEaReR abc"}, "abc", false},
		{"several spaces", []string{"Bearer    abc"}, "abc", false},
		{"trimmed", []string{"  Bearer abc \t"}, "abc", false},
		{"inner space kept", []string{"Bearer abc def"}, "abc def", false},
		{"empty", []string{""}, "", false},
		{"blank", []string{"   "}, "", false},
		{"scheme only", []string{"Bearer"}, "", true},
		{"scheme and spaces", []string{"Bearer   "}, "", true},
		{"tab separator", []string{"Bearer\tabc"}, "", true},
		{"no separator", []string{"Bearerabc"}, "", true},
		{"basic", []string{"Basic dXNlcjpwYXNz"}, "", true},
		{"line break", []string{"Bearer ab\ncd"}, "", true},
		{"two headers", []string{"Bearer a", "Bearer b"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.vals != nil {
				h["Authorization"] = tt.vals
			}
			e, p := Extract(h)
			assert.Equal(t, tt.token, e.Token)
			assert.Equal(t, tt.bad, p.Has(AuthorizationInvalid), p.String())
		})
	}
}

func TestExtractTrace(t *testing.T) {
	tests := []struct {
		name         string
		h            http.Header
		trace, flags string
		state        string
		p            Problems
	}{
		{"none", hdr(), "", "", "", 0},
		{"valid", hdr("traceparent", validTP), tTrace, "01", "", 0},
		{"invalid ignored", hdr("traceparent", "00-"+tTrace+"-"+tSpan+"-01-x"), "", "", "", TraceparentInvalid},
		{"empty is absent", hdr("traceparent", " "), "", "", "", 0},
		{"two traceparents", hdr("traceparent", validTP, "traceparent", validTP), "", "", "", TraceparentInvalid},
		{"tracestate verbatim", hdr("traceparent", validTP, "tracestate", "  rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE "),
			tTrace, "01", "rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE", 0},
		{"tracestate without traceparent", hdr("tracestate", "a=b"), "", "", "", 0},
		{"tracestate with invalid traceparent", hdr("traceparent", "00-"+tTrace+"-"+tSpan+"-1", "tracestate", "a=b"), "", "", "", TraceparentInvalid},
		{"tracestate joined", hdr("traceparent", validTP, "tracestate", "a=b", "tracestate", "c=d"), tTrace, "01", "a=b,c=d", 0},
		{"tracestate too long", hdr("traceparent", validTP, "tracestate", strings.Repeat("a", MaxTracestateBytes+1)), tTrace, "01", "", TracestateInvalid},
		{"tracestate joined too long", hdr("traceparent", validTP, "tracestate", strings.Repeat("a", 5000), "tracestate", strings.Repeat("b", 5000)), tTrace, "01", "", TracestateInvalid},
		{"tracestate control", hdr("traceparent", validTP, "tracestate", "a=\x01"), tTrace, "01", "", TracestateInvalid},
		{"tracestate DEL", hdr("traceparent", validTP, "tracestate", "a=b\x7f"), tTrace, "01", "", TracestateInvalid},
		{"tracestate tab kept", hdr("traceparent", validTP, "tracestate", "a=b,\tc=d"), tTrace, "01", "a=b,\tc=d", 0},
		{"tracestate not read without traceparent", hdr("tracestate", "a=\x01"), "", "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, p := Extract(tt.h)
			assert.Equal(t, tt.trace, e.TraceID)
			assert.Equal(t, tt.flags, e.TraceFlags)
			assert.Equal(t, tt.state, e.TraceState)
			assert.Equal(t, tt.p, p, p.String())
		})
	}
}

func TestExtractBaggage(t *testing.T) {
	manyMembers := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = "k" + strconv.Itoa(i) + "=v"
		}
		return strings.Join(parts, ",")
	}
	tests := []struct {
		name string
		vals []string
		want Envelope
		p    Problems
	}{
		{"caracal fields", []string{"caracal.agent_session=s1,caracal.delegation_edge=e1,caracal.parent_edge=pe,caracal.session=rec,caracal.hop=3"},
			Envelope{SessionID: "s1", DelegationID: "e1", ParentDelegationID: "pe", SubjectRecordID: "rec", Hop: 3}, 0},
		{"non-caracal kept in order", []string{"tenant=acme,caracal.hop=1,b=2,a=1"},
			Envelope{Hop: 1, Baggage: []Member{{"tenant", "acme"}, {"b", "2"}, {"a", "1"}}}, 0},
		{"repeated headers joined", []string{"a=1", "caracal.agent_session=s", "b=2"},
			Envelope{SessionID: "s", Baggage: []Member{{"a", "1"}, {"b", "2"}}}, 0},
		{"repeated key last value first position", []string{"a=1,b=2,a=3"},
			Envelope{Baggage: []Member{{"a", "3"}, {"b", "2"}}}, 0},
		{"repeated caracal key last wins", []string{"caracal.agent_session=x,caracal.agent_session=y"},
			Envelope{SessionID: "y"}, CaracalConflict},
		{"repeated caracal key same value", []string{"caracal.agent_session=x", "caracal.agent_session=%78,caracal.hop=2,caracal.hop=02"},
			Envelope{SessionID: "x", Hop: 2}, 0},
		{"repeated hop other value", []string{"caracal.hop=2,caracal.hop=3"}, Envelope{Hop: 3}, CaracalConflict},
		{"id of the wrong form ignored", []string{"caracal.agent_session=a%20b,caracal.delegation_edge=e1,caracal.session=" + strings.Repeat("r", 129)},
			Envelope{DelegationID: "e1"}, IDInvalid},
		{"id of the wrong form then a good one", []string{"caracal.agent_session=a/b,caracal.agent_session=s"},
			Envelope{SessionID: "s"}, IDInvalid},
		{"properties dropped", []string{"a=1;prop=x;p2, b = 2 ;q"},
			Envelope{Baggage: []Member{{"a", "1"}, {"b", "2"}}}, 0},
		{"key and value trimmed", []string{"  a  =  x y  "},
			Envelope{Baggage: []Member{{"a", "x y"}}}, 0},
		{"percent decoded", []string{"a=hello%20world%2c%2B,caracal.agent_session=%30198"},
			Envelope{SessionID: "0198", Baggage: []Member{{"a", "hello world,+"}}}, 0},
		{"plus stays plus", []string{"a=1+2"}, Envelope{Baggage: []Member{{"a", "1+2"}}}, 0},
		{"invalid escapes kept", []string{"a=%zz%4%"}, Envelope{Baggage: []Member{{"a", "%zz%4%"}}}, 0},
		{"decoded once", []string{"a=%2541"}, Envelope{Baggage: []Member{{"a", "%41"}}}, 0},
		{"value may contain equals", []string{"a=b=c"}, Envelope{Baggage: []Member{{"a", "b=c"}}}, 0},
		{"empty values absent", []string{"a=,caracal.agent_session=,caracal.hop=, b = ;p"}, Envelope{}, 0},
		{"empty members skipped", []string{",a=1,, ,"}, Envelope{Baggage: []Member{{"a", "1"}}}, 0},
		{"member without equals", []string{"a,b=1"}, Envelope{Baggage: []Member{{"b", "1"}}}, BaggageMember},
		{"member with empty key", []string{"=x,b=1"}, Envelope{Baggage: []Member{{"b", "1"}}}, BaggageMember},
		{"member with bad key", []string{"a b=1,c=2"}, Envelope{Baggage: []Member{{"c", "2"}}}, BaggageMember},
		{"unknown caracal key dropped", []string{"caracal.other=1,a=2"}, Envelope{Baggage: []Member{{"a", "2"}}}, 0},
		{"caracal prefix is case sensitive", []string{"Caracal.hop=4"}, Envelope{Baggage: []Member{{"Caracal.hop", "4"}}}, 0},
		{"hop 10", []string{"caracal.hop=10"}, Envelope{Hop: 10}, 0},
		{"hop leading zeros", []string{"caracal.hop=007"}, Envelope{Hop: 7}, 0},
		{"hop clamped", []string{"caracal.hop=11"}, Envelope{Hop: 10}, HopClamped},
		{"hop overflow", []string{"caracal.hop=99999999999999999999999999"}, Envelope{Hop: 10}, HopClamped},
		{"hop sign", []string{"caracal.hop=+1"}, Envelope{}, HopInvalid},
		{"hop negative", []string{"caracal.hop=-1"}, Envelope{}, HopInvalid},
		{"hop not digits", []string{"caracal.hop=1x"}, Envelope{}, HopInvalid},
		{"hop unicode digit", []string{"caracal.hop=١"}, Envelope{}, HopInvalid},
		{"exactly 64 members", []string{manyMembers(64)}, Envelope{Baggage: decodeAll(t, manyMembers(64))}, 0},
		{"65 members ignored", []string{manyMembers(64) + ",caracal.hop=1"}, Envelope{}, BaggageTooManyMembers},
		{"65 members across headers", []string{manyMembers(32), manyMembers(33)}, Envelope{}, BaggageTooManyMembers},
		{"empty members count", []string{"a=1" + strings.Repeat(",", 64)}, Envelope{}, BaggageTooManyMembers},
		{"8192 bytes", []string{"a=" + strings.Repeat("x", 8190)}, Envelope{Baggage: []Member{{"a", strings.Repeat("x", 8190)}}}, 0},
		{"8193 bytes ignored", []string{"caracal.hop=1,a=" + strings.Repeat("x", 8191-len("caracal.hop=1,"))}, Envelope{}, BaggageTooLarge},
		{"joined size counts the comma", []string{"a=" + strings.Repeat("x", 4094), "b=" + strings.Repeat("x", 4094)}, Envelope{}, BaggageTooLarge},
		{"both caps", []string{strings.Repeat(",", 9000)}, Envelope{}, BaggageTooLarge | BaggageTooManyMembers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, p := Extract(http.Header{"Baggage": tt.vals})
			assert.Equal(t, tt.want, e)
			assert.Equal(t, tt.p, p, p.String())
		})
	}
}

func decodeAll(t *testing.T, s string) []Member {
	ms, p := DecodeBaggage([]string{s})
	require.Zero(t, p)
	return ms
}

func TestDecodeBaggage(t *testing.T) {
	ms, p := DecodeBaggage([]string{"caracal.hop=2,a=%41,a=b", "x;y"})
	assert.Equal(t, BaggageMember, p)
	assert.Equal(t, []Member{{"caracal.hop", "2"}, {"a", "b"}}, ms)
	ms, p = DecodeBaggage(nil)
	assert.Nil(t, ms)
	assert.Zero(t, p)
}

func TestEncodeBaggage(t *testing.T) {
	tests := []struct {
		name string
		in   []Member
		want string
	}{
		{"empty", nil, ""},
		{"sorted byte order", []Member{{"b", "1"}, {"B", "2"}, {"a", "3"}, {"caracal.hop", "1"}}, "B=2,a=3,b=1,caracal.hop=1"},
		{"encoding", []Member{{"k", "a b+c,d;e=f%g/é~._-Z9"}}, "k=a%20b%2Bc%2Cd%3Be%3Df%25g%2F%C3%A9~._-Z9"},
		{"empty dropped", []Member{{"a", ""}, {"b", "x"}}, "b=x"},
		{"invalid key dropped", []Member{{"a b", "1"}, {"", "2"}, {"c,d", "3"}, {"e", "4"}}, "e=4"},
		{"repeated key last wins", []Member{{"a", "1"}, {"a", "2"}}, "a=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]Member(nil), tt.in...)
			assert.Equal(t, tt.want, EncodeBaggage(in))
			assert.Equal(t, tt.in, in, "input not modified")
		})
	}
	assert.Equal(t, "abc", EncodeValue("abc"))
	assert.Equal(t, "%00%FF", EncodeValue("\x00\xff"))
	assert.Equal(t, "\x00\xff", DecodeValue("%00%ff"))
	assert.Equal(t, "+", DecodeValue("+"))
}

func TestMergeBaggage(t *testing.T) {
	ids := Envelope{SessionID: "s", DelegationID: "d", ParentDelegationID: "p", SubjectRecordID: "r"}
	tests := []struct {
		name     string
		e        Envelope
		existing []string
		want     string
	}{
		{"nothing", Envelope{}, nil, ""},
		{"hop 0 without ids omitted", Envelope{Hop: 0}, nil, ""},
		{"hop alone", Envelope{Hop: 2}, nil, "caracal.hop=2"},
		{"negative hop", Envelope{Hop: -3, SessionID: "s"}, nil, "caracal.agent_session=s,caracal.hop=0"},
		{"hop above clamp written", Envelope{Hop: 12}, nil, "caracal.hop=12"},
		{"all ids", ids, nil, "caracal.agent_session=s,caracal.delegation_edge=d,caracal.hop=0,caracal.parent_edge=p,caracal.session=r"},
		{"one id emits hop", Envelope{DelegationID: "d"}, nil, "caracal.delegation_edge=d,caracal.hop=0"},
		{"context baggage", Envelope{Baggage: []Member{{"z", "1"}, {"a", "x y"}}}, nil, "a=x%20y,z=1"},
		{"context caracal keys deleted", Envelope{Baggage: []Member{{"caracal.hop", "9"}, {"caracal.x", "1"}, {"a", "1"}}}, nil, "a=1"},
		{"context empty and invalid dropped", Envelope{Baggage: []Member{{"a", ""}, {"b c", "1"}}}, nil, ""},
		{"request overlays context", Envelope{SessionID: "s", Baggage: []Member{{"a", "ctx"}, {"b", "ctx"}}},
			[]string{"b=req,c=req"}, "a=ctx,b=req,c=req,caracal.agent_session=s,caracal.hop=0"},
		{"request caracal keys deleted", Envelope{SessionID: "s"},
			[]string{"caracal.agent_session=evil,caracal.hop=9,caracal.other=1,x=1"}, "caracal.agent_session=s,caracal.hop=0,x=1"},
		{"request only caracal keys", Envelope{}, []string{"caracal.hop=9"}, ""},
		{"request empty value does not override", Envelope{Baggage: []Member{{"a", "ctx"}}}, []string{"a="}, "a=ctx"},
		{"request decoded then encoded", Envelope{}, []string{"a=x%20y+z;p=1"}, "a=x%20y%2Bz"},
		{"request over cap ignored", Envelope{Baggage: []Member{{"a", "1"}}}, []string{strings.Repeat("b=1,", 64) + "c=1"}, "a=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, MergeBaggage(tt.e, tt.existing))
		})
	}
}

func TestInject(t *testing.T) {
	full := Envelope{
		Token: "secret-token", TraceID: tTrace, TraceFlags: "00", TraceState: "rojo=1",
		SessionID: "s", DelegationID: "d", Hop: 1, Baggage: []Member{{"tenant", "acme"}},
	}
	otherTP := "00-" + strings.Repeat("ab", 16) + "-" + strings.Repeat("cd", 8) + "-01"

	t.Run("fresh headers", func(t *testing.T) {
		h := http.Header{}
		Inject(h, full, false)
		trace, span, flags, ok := ParseTraceparent(h.Get("traceparent"))
		require.True(t, ok)
		assert.Equal(t, tTrace, trace)
		assert.NotEqual(t, tSpan, span)
		assert.Equal(t, "00", flags)
		assert.Equal(t, []string{"rojo=1"}, h["Tracestate"])
		assert.Equal(t, []string{"caracal.agent_session=s,caracal.delegation_edge=d,caracal.hop=1,tenant=acme"}, h["Baggage"])
		assert.Empty(t, h.Get("Authorization"), "the codec never writes a credential")
		assert.Len(t, h, 3)
	})
	t.Run("empty envelope writes only traceparent", func(t *testing.T) {
		h := http.Header{"Baggage": {"caracal.hop=3"}}
		Inject(h, Envelope{}, true)
		_, _, flags, ok := ParseTraceparent(h.Get("traceparent"))
		require.True(t, ok)
		assert.Equal(t, "01", flags)
		assert.NotContains(t, h, "Baggage", "empty baggage is omitted")
		assert.NotContains(t, h, "Tracestate")
	})
	t.Run("merge keeps a valid traceparent and tracestate", func(t *testing.T) {
		h := http.Header{"Traceparent": {otherTP}, "Tracestate": {"mine=1"}, "Authorization": {"Bearer keep"}}
		Inject(h, full, true)
		assert.Equal(t, []string{otherTP}, h["Traceparent"])
		assert.Equal(t, []string{"mine=1"}, h["Tracestate"])
		assert.Equal(t, []string{"Bearer keep"}, h["Authorization"])
	})
	t.Run("merge replaces an invalid traceparent", func(t *testing.T) {
		for _, bad := range [][]string{{"garbage"}, {otherTP, otherTP}, {strings.ToUpper(otherTP)}} {
			h := http.Header{"Traceparent": bad}
			Inject(h, full, true)
			require.Len(t, h["Traceparent"], 1)
			trace, _, _, ok := ParseTraceparent(h["Traceparent"][0])
			require.True(t, ok)
			assert.Equal(t, tTrace, trace)
		}
	})
	t.Run("merge sets tracestate only when absent", func(t *testing.T) {
		h := http.Header{"Tracestate": {" "}}
		Inject(h, full, true)
		assert.Equal(t, []string{"rojo=1"}, h["Tracestate"], "a blank tracestate counts as absent")
	})
	t.Run("non-merge replaces", func(t *testing.T) {
		h := http.Header{"Traceparent": {otherTP}, "Tracestate": {"mine=1"}, "Baggage": {"x=1"}}
		Inject(h, full, false)
		assert.NotEqual(t, []string{otherTP}, h["Traceparent"])
		assert.Equal(t, []string{"rojo=1"}, h["Tracestate"])
		assert.Equal(t, []string{"caracal.agent_session=s,caracal.delegation_edge=d,caracal.hop=1,tenant=acme"}, h["Baggage"])
	})
	t.Run("non-merge without tracestate keeps the header", func(t *testing.T) {
		h := http.Header{"Tracestate": {"mine=1"}}
		Inject(h, Envelope{}, false)
		assert.Equal(t, []string{"mine=1"}, h["Tracestate"])
	})
	t.Run("merge baggage", func(t *testing.T) {
		h := http.Header{"Baggage": {"tenant=other,caracal.agent_session=evil", "extra=1"}}
		Inject(h, full, true)
		assert.Equal(t, []string{"caracal.agent_session=s,caracal.delegation_edge=d,caracal.hop=1,extra=1,tenant=other"}, h["Baggage"])
	})
	t.Run("merge keeping everything", func(t *testing.T) {
		h := http.Header{"Traceparent": {otherTP}, "Baggage": {"caracal.hop=1"}}
		Inject(h, Envelope{}, true)
		assert.Equal(t, http.Header{"Traceparent": {otherTP}}, h)
	})
	t.Run("fresh trace id per call when the envelope has none", func(t *testing.T) {
		h1, h2 := http.Header{}, http.Header{}
		Inject(h1, Envelope{TraceID: "bad"}, false)
		Inject(h2, Envelope{TraceID: "bad"}, false)
		t1, _, _, ok1 := ParseTraceparent(h1.Get("traceparent"))
		t2, _, _, ok2 := ParseTraceparent(h2.Get("traceparent"))
		require.True(t, ok1 && ok2)
		assert.NotEqual(t, t1, t2)
	})
}

func TestRoundTrip(t *testing.T) {
	in := Envelope{
		TraceID: tTrace, TraceFlags: "03", TraceState: "a=1,b=2",
		SessionID: "0198d0a2-7f55-7a2b-8c3d-4e5f60718293", DelegationID: "edge-1:a.b_C",
		ParentDelegationID: "p", SubjectRecordID: "rec", Hop: 10,
		Baggage: []Member{{"a", "1"}, {"tenant", "ünïcode value"}, {"z", "%41+"}},
	}
	h := http.Header{}
	Inject(h, in, false)
	h.Set("Authorization", "Bearer tok")
	out, p := Extract(h)
	require.Zero(t, p, p.String())
	in.Token = "tok"
	assert.Equal(t, in, out)
}

func TestProblemsString(t *testing.T) {
	assert.Equal(t, "none", Problems(0).String())
	assert.Equal(t, "invalid traceparent; baggage over 64 members ignored", (TraceparentInvalid | BaggageTooManyMembers).String())
	assert.Contains(t, Problems(1<<15).String(), "0x8000")
	assert.True(t, (BaggageTooLarge | HopInvalid).Has(HopInvalid))
	assert.False(t, HopInvalid.Has(BaggageIgnored))
}

func TestEnvelopeRedactsToken(t *testing.T) {
	e := Envelope{Token: "super-secret", SessionID: "s"}
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		out := fmt.Sprintf(f, e)
		assert.NotContains(t, out, "super-secret", f)
		assert.Contains(t, out, "redacted", f)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "env", e)
	assert.NotContains(t, buf.String(), "super-secret")
	assert.Contains(t, buf.String(), `"session_id":"s"`)
}
