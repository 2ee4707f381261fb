package caracaltest_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/caracal-go/caracal/caracaltest"
)

// BenchmarkEchoRoundTrip is one request to the echo upstream, recorded, over
// loopback and in memory: the harness's own cost per request.
func BenchmarkEchoRoundTrip(b *testing.B) {
	for _, m := range []struct {
		name string
		opts []caracaltest.Option
	}{{"loopback", nil}, {"memory", []caracaltest.Option{caracaltest.InMemory()}}} {
		b.Run(m.name, func(b *testing.B) {
			s := caracaltest.Start(b, m.opts...)
			hc := s.HTTPClient()
			if m.opts == nil {
				tr := &http.Transport{}
				b.Cleanup(tr.CloseIdleConnections)
				hc = &http.Client{Transport: tr}
			}
			u := s.UpstreamURL("resource://tickets") + "/tickets/42"
			b.ReportAllocs()
			for b.Loop() {
				resp, err := hc.Get(u)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatal(resp.Status)
				}
				// Keep the record from growing across iterations.
				s.ResetRecord()
			}
		})
	}
}
