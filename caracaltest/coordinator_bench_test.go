package caracaltest

import (
	"net/http"
	"testing"
)

// BenchmarkCoordinatorStartRetire measures one task start and its retire
// over loopback HTTP, token verification included.
func BenchmarkCoordinatorStartRetire(b *testing.B) {
	e := newCoordEnv(b, withLimits(Limits{ReceiptsPerScope: 1 << 30}))
	b.ReportAllocs()
	for b.Loop() {
		r := e.do(req{method: "POST", path: startPath, body: `{"application_id":"app-reporter","labels":["reader"]}`,
			header: map[string]string{"Idempotency-Key": newID(), "Idempotency-Key-Kind": "generated"}})
		if r.status != http.StatusCreated {
			b.Fatalf("start: %d %s", r.status, r.raw)
		}
		if got := e.do(req{method: "DELETE", path: startPath + "/" + r.str("agent_session_id")}); got.status != http.StatusNoContent {
			b.Fatalf("retire: %d %s", got.status, got.raw)
		}
	}
}
