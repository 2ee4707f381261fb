package envelope

import (
	"net/http"
	"net/url"
	"testing"
)

func benchEnvelope() Envelope {
	return Envelope{
		Token: "eyJhbGciOiJFUzI1NiJ9.e30.sig", TraceID: tTrace, TraceFlags: "01",
		SessionID: "0198d0a2-7f55-7a2b-8c3d-4e5f60718293", DelegationID: "0198d0a3-9b00-7d11-8e22-334455667788",
		Hop: 1, Baggage: []Member{{"tenant", "example"}},
	}
}

// BenchmarkInject measures the transport form (merge) into a request header
// that already carries the usual headers.
func BenchmarkInject(b *testing.B) {
	e := benchEnvelope()
	h := http.Header{"Content-Type": {"application/json"}, "Accept": {"*/*"}}
	b.ReportAllocs()
	for b.Loop() {
		Inject(h, e, true)
		delete(h, "Traceparent")
		delete(h, "Baggage")
	}
}

// BenchmarkExtract measures a typical inbound request: bearer, traceparent
// and baggage with Caracal and one application member.
func BenchmarkExtract(b *testing.B) {
	h := http.Header{
		"Authorization": {"Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig"},
		"Traceparent":   {validTP},
		"Baggage":       {"caracal.agent_session=0198d0a2-7f55-7a2b-8c3d-4e5f60718293,caracal.delegation_edge=0198d0a3-9b00-7d11-8e22-334455667788,caracal.hop=1,tenant=example"},
	}
	b.ReportAllocs()
	for b.Loop() {
		e, p := Extract(h)
		if p != 0 || e.Hop != 1 {
			b.Fatal(p)
		}
	}
}

// BenchmarkRoute measures a binding match and rewrite.
func BenchmarkRoute(b *testing.B) {
	r, err := NewRouter("https://gateway.example/", []Binding{
		{"resource://billing", "https://billing.example/v1"},
		{"resource://tickets", "http://tickets.example/api"},
		{"resource://tickets-v2", "http://tickets.example/api/v2"},
	})
	if err != nil {
		b.Fatal(err)
	}
	target, _ := url.Parse("http://tickets.example/api/tickets/42?expand=1")
	b.ReportAllocs()
	for b.Loop() {
		d, ok := r.Route(target, "")
		if !ok || d.Resource != "resource://tickets" {
			b.Fatal(d)
		}
	}
}

// BenchmarkRouteUnbound measures the cost on a URL outside every binding,
// the path every non-governed request takes.
func BenchmarkRouteUnbound(b *testing.B) {
	r, err := NewRouter("https://gateway.example/", []Binding{
		{"resource://tickets", "http://tickets.example/api"},
	})
	if err != nil {
		b.Fatal(err)
	}
	target, _ := url.Parse("https://api.other.example/v1/items?page=2")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := r.Route(target, ""); ok {
			b.Fatal("routed")
		}
	}
}
