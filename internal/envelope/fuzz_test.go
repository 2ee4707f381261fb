package envelope

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/wire"
)

// FuzzDecodeEncode checks that decoding arbitrary headers never panics and
// respects the caps and invariants of §7.3, that re-encoding what was
// decoded decodes to the same envelope, and that an envelope built from
// arbitrary values survives Inject then Extract.
func FuzzDecodeEncode(f *testing.F) {
	f.Add("Bearer abc", validTP, "rojo=1", "caracal.agent_session=s,caracal.hop=2,tenant=acme", "", "sess", "k", "v", 1)
	f.Add("bearer  x y", "01-"+tTrace+"-"+tSpan+"-01-zz", "", "a=%20b%zz;p,caracal.hop=99", "b=2", "", "caracal.x", "", 0)
	f.Add("Basic x", "00-"+tTrace+"-"+tSpan+"-0A", "\x01", "=x,a b=1,,;", "caracal.hop=1x", "ü é", "tenant", "a,b;c=d%", 11)
	f.Add("", "ff-"+tTrace+"-"+tSpan+"-01", " ", strings.Repeat("a=1,", 70), "", "%41", "K", "+", -1)
	f.Add("Bearer", "", "", "a="+strings.Repeat("x", 8200), "", "s", "k", " v ", 10)
	f.Add("", "", "", "a="+strings.Repeat("+", 3000), "b=1", "s", "k", strings.Repeat("v", 5000), 1)
	f.Add("", "cc-"+tTrace+"-"+tSpan+"-ff-future", "congo=1", "", "", "", "", "", 0)
	f.Add("", "00-"+strings.Repeat("0", 32)+"-"+tSpan+"-01", "congo=1", "", "", "", "", "", 0)
	f.Fuzz(func(t *testing.T, auth, tp, ts, bag1, bag2, session, key, value string, hop int) {
		h := http.Header{}
		for k, v := range map[string]string{"Authorization": auth, "Traceparent": tp, "Tracestate": ts} {
			if v != "" {
				h[k] = []string{v}
			}
		}
		var bags []string
		for _, b := range []string{bag1, bag2} {
			if b != "" {
				bags = append(bags, b)
			}
		}
		if bags != nil {
			h["Baggage"] = bags
		}

		e, p := Extract(h)
		checkInvariants(t, e, p, bags)
		if e.TraceID != "" && !strings.HasPrefix(strings.TrimSpace(tp), "00-") {
			assert.Contains(t, []string{"00", "01"}, e.TraceFlags, "only the sampled flag of a higher version")
		}

		// What was decoded re-encodes to the same envelope, whenever the
		// encoding stays within the inbound caps.
		out := http.Header{}
		Inject(out, e, false)
		if baggageCaps(out["Baggage"]) == 0 && (e.TraceState == "" || validTracestate(e.TraceState)) {
			back, bp := Extract(out)
			require.Zero(t, bp&^(HopClamped), bp.String())
			want := e
			want.Token = ""
			if want.TraceID == "" {
				want.TraceID, want.TraceFlags = back.TraceID, "01"
			}
			want.Baggage = leftOut(t, e, back)
			assert.Equal(t, sortedEnv(want), sortedEnv(back))
		}

		// An envelope made of arbitrary values round-trips as long as it is
		// representable: valid key, non-empty values, hop within the clamp.
		built := Envelope{SessionID: session, DelegationID: value, Hop: min(max(hop, 0), MaxHop)}
		if ValidKey(key) && !IsCaracalKey(key) && value != "" {
			built.Baggage = []Member{{key, value}}
		}
		// An id not of the Coordinator's form is sent, but not read back.
		want, wantP := built, Problems(0)
		for _, id := range []*string{&want.SessionID, &want.DelegationID} {
			if *id != "" && !wire.ValidID(*id) {
				*id, wantP = "", IDInvalid
			}
		}
		out = http.Header{}
		Inject(out, built, false)
		back, bp := Extract(out)
		if baggageCaps(out["Baggage"]) != 0 {
			assert.Equal(t, baggageCaps(out["Baggage"]), bp)
			return
		}
		require.Equal(t, wantP, bp, bp.String())
		want.TraceID, want.TraceFlags = back.TraceID, "01"
		want.Baggage = leftOut(t, built, back)
		assert.Equal(t, want, back)
	})
}

// leftOut checks that back carries e's non-Caracal members, except for some
// left out only when all of them would not fit the caps, and returns e's
// members without the ones left out.
func leftOut(t *testing.T, e, back Envelope) []Member {
	t.Helper()
	all := collectBaggage(nil, &e, nil)
	over := len(all) > MaxBaggageMembers || encodedBaggageLen(all) > MaxBaggageBytes
	var kept []Member
	for _, m := range e.Baggage {
		if hasKey(back.Baggage, m.Key) {
			kept = append(kept, m)
		}
	}
	if len(kept) < len(e.Baggage) {
		assert.True(t, over, "a member was left out of a baggage within the caps")
	}
	return kept
}

func checkInvariants(t *testing.T, e Envelope, p Problems, bags []string) {
	t.Helper()
	assert.GreaterOrEqual(t, e.Hop, 0)
	assert.LessOrEqual(t, e.Hop, MaxHop)
	if e.TraceID != "" {
		assert.True(t, ValidTraceID(e.TraceID))
		assert.True(t, ValidTraceFlags(e.TraceFlags))
	} else {
		assert.Empty(t, e.TraceFlags)
		assert.Empty(t, e.TraceState, "no tracestate without its traceparent")
	}
	assert.LessOrEqual(t, len(e.TraceState), MaxTracestateBytes)
	assert.NotContains(t, e.Token, "\n")
	if p&AuthorizationInvalid != 0 {
		assert.Empty(t, e.Token, "an invalid Authorization never yields a token")
	}
	size, members := len(strings.Join(bags, ",")), strings.Count(strings.Join(bags, ","), ",")+1
	if len(bags) > 0 && (size > MaxBaggageBytes || members > MaxBaggageMembers) {
		assert.NotZero(t, p&BaggageIgnored)
		assert.Empty(t, e.Baggage)
		assert.Zero(t, e.Hop)
		assert.Empty(t, e.SessionID+e.DelegationID+e.ParentDelegationID+e.SubjectRecordID)
	}
	for _, id := range []string{e.SessionID, e.DelegationID, e.ParentDelegationID, e.SubjectRecordID} {
		assert.True(t, id == "" || wire.ValidID(id), "only ids of the Coordinator's form are read")
	}
	assert.LessOrEqual(t, len(e.Baggage), MaxBaggageMembers)
	seen := map[string]bool{}
	for _, m := range e.Baggage {
		assert.True(t, ValidKey(m.Key), m.Key)
		assert.False(t, IsCaracalKey(m.Key), m.Key)
		assert.NotEmpty(t, m.Value)
		assert.False(t, seen[m.Key], "duplicate key %q", m.Key)
		seen[m.Key] = true
	}
}

func sortedEnv(e Envelope) Envelope {
	e.Baggage = slices.Clone(e.Baggage)
	sortMembers(e.Baggage)
	if len(e.Baggage) == 0 {
		e.Baggage = nil
	}
	return e
}

// FuzzRoute checks that the route decision never panics, never routes a
// path the Gateway would refuse as traversal, and that a rewritten URL
// always points at the Gateway without credentials or fragment.
func FuzzRoute(f *testing.F) {
	f.Add("http://up.example/api/tickets/1?x=1#f", "")
	f.Add("http://up.example/api/%2e%2e/x", "")
	f.Add("http://elsewhere.example/apiary", "resource://tickets")
	f.Add("https://gw.example:8443/base/x", "r")
	f.Add("http://u:p@up.example/api/a%2Fb", "")
	f.Add("http://other.example", "")
	f.Add("0", "0") // a path-relative target
	f.Fuzz(func(t *testing.T, target, explicit string) {
		u, err := url.Parse(target)
		if err != nil {
			return
		}
		r, err := NewRouter("https://gw.example:8443/base/", []Binding{
			{"resource://root", "http://other.example"},
			{"resource://tickets", "http://up.example/api"},
		})
		require.NoError(t, err)
		before := u.String()
		d, ok := r.Route(u, explicit)
		require.Equal(t, before, u.String(), "target not modified")
		if !ok {
			return
		}
		assert.False(t, HasDotSegment(u.Path))
		if d.Targeted {
			assert.Nil(t, d.URL)
			return
		}
		require.NotNil(t, d.URL)
		assert.NotEmpty(t, d.Resource)
		assert.Equal(t, "https", d.URL.Scheme)
		assert.Equal(t, "gw.example:8443", d.URL.Host)
		assert.Nil(t, d.URL.User)
		assert.Empty(t, d.URL.Fragment)
		assert.True(t, d.URL.Path == "/base" || strings.HasPrefix(d.URL.Path, "/base/"), d.URL.Path)
		assert.False(t, HasDotSegment(d.URL.Path), d.URL.Path)
		back, err := url.Parse(d.URL.String())
		require.NoError(t, err)
		assert.Equal(t, d.URL.Host, back.Host)
	})
}
