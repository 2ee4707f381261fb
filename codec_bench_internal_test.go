package caracal

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/caracal-go/caracal/internal/envelope"
)

// BenchmarkHeaderCodec is the envelope work the SDK does per request: the
// transport's outbound merge into a request's headers, and the middleware's
// inbound decode into an Agent.
func BenchmarkHeaderCodec(b *testing.B) {
	a := unitAgent()
	a.sessionID, a.delegationID = "0198d0a2-7f55-7a2b-8c3d-4e5f60718293", "0198d0a3-9b00-7d11-8e22-334455667788"
	b.Run("inject", func(b *testing.B) {
		// The request's header is the caller's, not the codec's: it is
		// built once, and what Inject added is removed after each round.
		h := http.Header{"Accept": {"application/json"}}
		b.ReportAllocs()
		for b.Loop() {
			envelope.Inject(h, agentEnvelope(a), true)
			delete(h, "Traceparent")
			delete(h, "Baggage")
		}
	})
	out := http.Header{"Authorization": {"Bearer x.y.z"}}
	envelope.Inject(out, agentEnvelope(a), true)
	b.Run("extract", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			env, _ := envelope.Extract(out)
			// Built as the middleware builds it, and kept: an Agent
			// nothing reads would be optimised away.
			token := env.Token
			codecSink = &Agent{token: &token, presented: new(atomic.Bool), traceID: env.TraceID,
				traceFlags: env.TraceFlags, traceState: env.TraceState, sessionID: env.SessionID, baggage: env.Baggage}
		}
	})
}

// codecSink keeps the Agents BenchmarkHeaderCodec builds.
var codecSink *Agent
