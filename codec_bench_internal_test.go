package caracal

import (
	"net/http"
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
		b.ReportAllocs()
		for b.Loop() {
			h := http.Header{"Accept": {"application/json"}}
			envelope.Inject(h, agentEnvelope(a), true)
		}
	})
	out := http.Header{"Authorization": {"Bearer x.y.z"}}
	envelope.Inject(out, agentEnvelope(a), true)
	b.Run("extract", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			env, _ := envelope.Extract(out)
			_ = &Agent{token: &env.Token, traceID: env.TraceID, sessionID: env.SessionID, baggage: env.Baggage}
		}
	})
}
