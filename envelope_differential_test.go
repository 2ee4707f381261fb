package caracal_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

const inboundTracestate = "vendor=agent"

// bound is what the upstream's middleware bound from a request.
type bound struct {
	status                    int
	session, edge, parentEdge string
	record, traceID           string
	hop                       int
}

// boundBy runs the trusted-propagation middleware mw on a request with
// header h and reports what it bound.
func boundBy(mw func(http.Handler) http.Handler, h http.Header) bound {
	var b bound
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := caracal.FromContext(r.Context())
		if ok {
			b = bound{session: a.SessionID(), edge: a.DelegationID(), parentEdge: a.ParentDelegationID(),
				record: a.SubjectRecordID(), traceID: a.TraceID(), hop: a.Hop()}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	req := httptest.NewRequest(http.MethodGet, "http://upstream.test/", nil)
	req.Header = h.Clone()
	rec := httptest.NewRecorder()
	mw(next).ServeHTTP(rec, req)
	b.status = rec.Code
	return b
}

// FuzzEnvelopeAgreesWithGateway sends a governed request that already
// carries the caller's own traceparent, tracestate and baggage (each split
// on "\n" into repeated headers) through the SDK transport to the test
// Gateway, and checks against PROTOCOL §7 and §8.6 what the Gateway got,
// what it forwarded upstream, and what the trusted-propagation middleware
// binds from either: the agent's Caracal members replace every caracal.*
// member the caller wrote, the caller's other members survive, the trace
// is the caller's valid traceparent's or else the agent's, and the
// middleware binds the agent's ids whole or none of them.
func FuzzEnvelopeAgreesWithGateway(f *testing.F) {
	var mu sync.Mutex
	var upHeader http.Header
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		upHeader = r.Header.Clone()
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	st := caracaltest.Start(f, caracaltest.InMemory(),
		caracaltest.WithLimits(caracaltest.Limits{MintPerMinute: 1 << 30}),
		caracaltest.WithResource(caracaltest.Resource{Identifier: tickets, Scopes: []string{"tickets:read"}, Upstream: up}))
	cfg := st.Config()
	base := st.UpstreamURL(tickets)
	cfg.Bindings = []caracal.ResourceBinding{{ResourceID: tickets, UpstreamPrefix: base}}
	c, err := caracal.NewFromConfig(cfg, st.ClientOptions()...)
	require.NoError(f, err)
	f.Cleanup(func() { _ = c.Close(context.Background()) })
	mw, err := c.Middleware(caracal.TrustedPropagation())
	require.NoError(f, err)
	root, err := c.Spawn(context.Background())
	require.NoError(f, err)
	narrow := caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, tickets, caracal.Constraints{}, time.Hour))
	var agents []*caracal.Agent
	for _, opts := range [][]caracal.SpawnOption{
		{caracal.WithLabels("reader"), narrow},
		{caracal.WithLabels("reader"), narrow, caracal.WithTraceID("4bf92f3577b34da6a3ce929d0e0e4736")},
	} {
		s, err := c.Spawn(root.Context(), opts...)
		require.NoError(f, err)
		agents = append(agents, s.Agent())
	}
	// An agent bound from an inbound request carries its own flags,
	// tracestate and non-Caracal baggage.
	in := http.Header{
		"Authorization": {"Bearer inbound"},
		"Traceparent":   {"00-5f1c2b3a4d5e6f708192a3b4c5d6e7f8-3c4d5e6f708192a3-00"},
		"Tracestate":    {inboundTracestate},
		"Baggage": {"tenant=agent,shared=agent%2C1,caracal.agent_session=" + agents[0].SessionID() +
			",caracal.delegation_edge=" + agents[0].DelegationID() + ",caracal.hop=" + strconv.Itoa(agents[0].Hop())},
	}
	var inbound *caracal.Agent
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "http://upstream.test/", nil)
	req.Header = in
	mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inbound, _ = caracal.FromContext(r.Context())
	})).ServeHTTP(rec, req)
	require.NotNil(f, inbound, "the inbound agent was not bound: %d", rec.Code)
	agents = append(agents, inbound)
	agentFlags := []string{"01", "01", "00"}
	agentState := []string{"", "", inboundTracestate}
	agentBaggage := []map[string]string{nil, nil, {"tenant": "agent", "shared": "agent,1"}}
	hc := c.HTTPClient(caracal.WithScopes("tickets:read"))

	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, s := range []struct {
		agent       uint8
		tp, ts, bag string
	}{
		{0, "", "", ""},
		{1, tp, "vendor=x", "tenant=t1"},
		{0, "", "", "caracal.agent_session=forged,caracal.delegation_edge=forged,caracal.hop=9,tenant=t1"},
		{1, "", "", "Caracal.agent_session=x,CARACAL.HOP=3,caracal.Hop=2"},
		{0, "", "", "caracal.agent_session;p=1=x, caracal.hop =7 ,k=v;prop=1;q"},
		{0, "", "", "k=a%2Cb%3Dc%3B,j=%ZZ%4,p=+ x +"},
		{1, "", "", ",,  ,=v,k=,=,k2= ;p"},
		{0, "", "", "k=1\nk=2\ncaracal.session=forged"},
		{0, "", "", "k=caf\xc3\xa9,caf\xc3\xa9=1,\xff=\xfe"},
		{1, "", "", "k=" + strings.Repeat("a", 8200)},
		{0, "", "", strings.Repeat("m=1,", 64) + "n=2"},
		{0, "", "", strings.Repeat("k", 100) + "=" + strings.Repeat("%20", 2700)},
		{1, tp + "\n" + tp, "a=1\nb=2", ""},
		{0, "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03-extra", "", ""},
		{0, "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", "", ""},
		{1, "00-00000000000000000000000000000000-b7ad6b7169203331-01", "", ""},
		{0, " " + tp + "\t", " ", "k =\tv\t"},
		{1, "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "x=\xc3\xa9", "caracal.=1,caracal=2"},
		{2, "", "", ""},
		{2, tp, "", "shared=caller,caracal.hop=0,Tenant=x"},
		{2, "", "a=1", "tenant=;p,shared= "},
		{2, "zz", "", "k=" + strings.Repeat("b", 8200)},
		{2, "", "", strings.Repeat("k", 90) + "=" + strings.Repeat("%20", 2700)},
	} {
		f.Add(s.agent, s.tp, s.ts, s.bag)
	}
	f.Fuzz(func(t *testing.T, agentIdx uint8, callerTP, callerTS, callerBag string) {
		i := int(agentIdx) % len(agents)
		a := agents[i]
		tps, tss, bags := headerValues(callerTP), headerValues(callerTS), headerValues(callerBag)
		if !sendable(tps) || !sendable(tss) || !sendable(bags) {
			return // net/http refuses such values itself
		}
		req, err := http.NewRequestWithContext(caracal.NewContext(context.Background(), a), http.MethodGet, base+"/tickets/1", nil)
		require.NoError(t, err)
		req.Header["Traceparent"] = tps
		req.Header["Tracestate"] = tss
		req.Header["Baggage"] = bags
		mu.Lock()
		upHeader = nil
		mu.Unlock()
		st.ResetRecord()
		resp, err := hc.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		mu.Lock()
		uh := upHeader
		mu.Unlock()
		require.NotNil(t, uh, "the upstream was not reached")
		gh := gatewayHeader(t, st)

		// §7.2 rule 1: a caller's valid traceparent is kept, else the
		// agent's trace id with a fresh span.
		callerTrace, callerValid := "", len(tps) == 1
		if callerValid {
			callerTrace, callerValid = protoTraceID(tps[0])
		}
		require.Len(t, gh["Traceparent"], 1, "traceparent at the Gateway")
		if callerValid {
			require.Equal(t, tps[0], gh["Traceparent"][0], "the caller's valid traceparent was not kept")
		} else {
			trace, ok := protoTraceID(gh["Traceparent"][0])
			require.True(t, ok, "the SDK sent an invalid traceparent %q", gh["Traceparent"][0])
			require.Equal(t, a.TraceID(), trace, "the Gateway got another trace than the agent's")
			require.True(t, strings.HasPrefix(gh["Traceparent"][0], "00-"))
			require.True(t, strings.HasSuffix(gh["Traceparent"][0], "-"+agentFlags[i]), "%q: not the agent's flags", gh["Traceparent"][0])
		}
		// §8.6: the upstream gets the Gateway's traceparent if valid.
		require.Len(t, uh["Traceparent"], 1)
		upTrace, ok := protoTraceID(uh["Traceparent"][0])
		require.True(t, ok, "the upstream got an invalid traceparent %q", uh["Traceparent"][0])
		switch {
		case !callerValid:
			require.Equal(t, a.TraceID(), upTrace, "the upstream got another trace than the agent's")
		case strings.HasPrefix(strings.TrimSpace(tps[0]), "00-"):
			require.Equal(t, callerTrace, upTrace, "the upstream lost the caller's trace")
		}

		// §7.2 rule 2: the caller's tracestate is left alone, the agent's
		// set only when the caller has none; the Gateway forwards it.
		wantTS := nonEmpty(tss)
		if wantTS == nil && agentState[i] != "" {
			wantTS = []string{agentState[i]}
		}
		require.Equal(t, wantTS, nonEmpty(gh["Tracestate"]), "tracestate at the Gateway")
		require.Equal(t, wantTS, nonEmpty(uh["Tracestate"]), "tracestate upstream")

		// §7.2 rule 3 and §7.3: the caller's non-Caracal members, every
		// caracal.* one replaced by the agent's.
		want := map[string]string{}
		for k, v := range agentBaggage[i] {
			want[k] = v
		}
		for k, v := range protoBaggage(bags) {
			want[k] = v
		}
		for k := range want {
			if strings.HasPrefix(k, "caracal.") {
				delete(want, k)
			}
		}
		ids := map[string]string{
			"caracal.agent_session":   a.SessionID(),
			"caracal.delegation_edge": a.DelegationID(),
			"caracal.parent_edge":     a.ParentDelegationID(),
			"caracal.session":         a.SubjectRecordID(),
		}
		agentMembers := map[string]string{"caracal.hop": strconv.Itoa(a.Hop())}
		for k, v := range ids {
			if v != "" {
				agentMembers[k] = v
			}
		}
		require.Len(t, gh["Baggage"], 1, "baggage at the Gateway")
		atGateway := protoBaggage(gh["Baggage"])
		others := map[string]string{}
		for k, v := range atGateway {
			if strings.HasPrefix(k, "caracal.") {
				require.Equal(t, agentMembers[k], v, "%s at the Gateway", k)
			} else {
				others[k] = v
			}
		}
		for k := range agentMembers {
			require.Contains(t, atGateway, k, "the Gateway got no %s", k)
		}
		for k, v := range others {
			require.Equal(t, want[k], v, "member %q at the Gateway is not the caller's", k)
		}
		all := map[string]string{}
		for k, v := range want {
			all[k] = v
		}
		for k, v := range agentMembers {
			all[k] = v
		}
		if fitsCaps(all) {
			for k := range want {
				if tokenKey(k) {
					require.Contains(t, others, k, "the caller's member %q was dropped", k)
				}
			}
		}

		// §8.6: the Gateway strips the caracal.* members and forwards the
		// rest.
		upstream := protoBaggage(uh["Baggage"])
		for _, v := range uh["Baggage"] {
			for _, m := range strings.Split(v, ",") {
				k, _, _ := strings.Cut(m, "=")
				require.False(t, strings.HasPrefix(strings.TrimSpace(k), "caracal."), "caracal.* member %q upstream", m)
			}
		}
		require.Equal(t, others, nonNil(upstream), "baggage upstream")

		// The middleware binds the agent's ids whole from what the Gateway
		// got, and none from what the upstream got.
		sent := boundBy(mw, gh)
		require.Equal(t, http.StatusNoContent, sent.status, "the SDK's own envelope was refused")
		require.Equal(t, bound{status: http.StatusNoContent, session: a.SessionID(), edge: a.DelegationID(),
			parentEdge: a.ParentDelegationID(), record: a.SubjectRecordID(), traceID: sent.traceID, hop: a.Hop()}, sent)
		got := boundBy(mw, uh)
		require.Equal(t, bound{status: http.StatusNoContent, traceID: upTrace}, got, "bound behind the Gateway")
	})
}

// gatewayHeader returns the header of the one request the Gateway got.
func gatewayHeader(t *testing.T, st *caracaltest.Stack) http.Header {
	t.Helper()
	var h http.Header
	for _, r := range st.Requests() {
		if r.Service == "gateway" {
			require.Nil(t, h, "the Gateway got two requests")
			h = r.Header
		}
	}
	require.NotNil(t, h, "the Gateway got nothing")
	return h
}

// headerValues splits s on "\n" into repeated header values; "" is none.
func headerValues(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// sendable reports whether net/http would send the values as they are.
func sendable(vs []string) bool {
	for _, v := range vs {
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
				return false
			}
		}
		if strings.Trim(v, " \t") != v {
			return false // a server would trim it; the in-memory one does not
		}
	}
	return true
}

func nonEmpty(vs []string) []string {
	var out []string
	for _, v := range vs {
		if strings.TrimSpace(v) != "" {
			out = append(out, v)
		}
	}
	return out
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// protoTraceID parses a traceparent by the rules of PROTOCOL §7.3.
func protoTraceID(v string) (string, bool) {
	parts := strings.Split(strings.TrimSpace(v), "-")
	if len(parts) < 4 {
		return "", false
	}
	lowerHex := func(s string, n int) bool {
		if len(s) != n {
			return false
		}
		for _, c := range []byte(s) {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
		return true
	}
	zero := func(s string) bool { return strings.Trim(s, "0") == "" }
	ver, trace, span, flags := parts[0], parts[1], parts[2], parts[3]
	if !lowerHex(ver, 2) || ver == "ff" || ver == "00" && len(parts) != 4 {
		return "", false
	}
	if !lowerHex(trace, 32) || zero(trace) || !lowerHex(span, 16) || zero(span) || !lowerHex(flags, 2) {
		return "", false
	}
	return trace, true
}

// protoBaggage decodes baggage values by the rules of PROTOCOL §7.3: the
// last value of a repeated key wins.
func protoBaggage(vs []string) map[string]string {
	joined := strings.Join(vs, ",")
	if len(vs) == 0 || len(joined) > 8192 || strings.Count(joined, ",")+1 > 64 {
		return nil
	}
	out := map[string]string{}
	for _, m := range strings.Split(joined, ",") {
		m = strings.TrimSpace(m)
		eq := strings.IndexByte(m, '=')
		if eq <= 0 {
			continue
		}
		key := strings.TrimSpace(m[:eq])
		val, _, _ := strings.Cut(m[eq+1:], ";")
		val = pctDecode(strings.TrimSpace(val))
		if key == "" || val == "" {
			continue
		}
		out[key] = val
	}
	return out
}

func pctDecode(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if hi, lo := hexVal(s[i+1]), hexVal(s[i+2]); hi >= 0 && lo >= 0 {
				b = append(b, byte(hi<<4|lo))
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}

func hexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// fitsCaps reports whether the members, encoded as §7.2 rule 3 says, stay
// within the §7.3 caps a receiver applies.
func fitsCaps(ms map[string]string) bool {
	n := len(ms) - 1
	for k, v := range ms {
		n += len(k) + 1
		for _, c := range []byte(v) {
			if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
				n++
			} else {
				n += 3
			}
		}
	}
	return len(ms) <= 64 && n <= 8192
}

// tokenKey reports whether k is an RFC 9110 token, the W3C baggage key
// syntax; the SDK does not re-emit members with other keys.
func tokenKey(k string) bool {
	for _, c := range []byte(k) {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return k != ""
}
