package caracal_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
	"github.com/caracal-go/caracal/internal/stsclient"
	"github.com/caracal-go/caracal/internal/wire"
)

// BenchmarkRoundTrip compares a bare http.Transport round trip to an
// in-process (loopback) upstream with the same round trip through the SDK
// transport, for a URL outside every binding: the SDK's cost on traffic it
// does not govern.
func BenchmarkRoundTrip(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	defer up.Close()
	g := startGoverned(b)
	base := &http.Transport{MaxIdleConnsPerHost: 4}
	defer base.CloseIdleConnections()

	run := func(b *testing.B, rt http.RoundTripper) {
		req, err := http.NewRequestWithContext(g.reader.Context(), http.MethodGet, up.URL+"/items/1", nil)
		require.NoError(b, err)
		b.ReportAllocs()
		for b.Loop() {
			resp, err := rt.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
	}
	// The same without the network, so that the SDK's own cost is not lost
	// in the loopback's noise: a base that answers from memory.
	canned := rtFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
	})
	b.Run("stub-bare", func(b *testing.B) { run(b, canned) })
	b.Run("stub-sdk-nonbound", func(b *testing.B) {
		run(b, g.c.Transport(canned, caracal.WithScopes("tickets:read")))
	})
	b.Run("bare", func(b *testing.B) { run(b, base) })
	b.Run("sdk-nonbound", func(b *testing.B) {
		run(b, g.c.Transport(base, caracal.WithScopes("tickets:read")))
	})
	b.Run("sdk-nonbound-propagate", func(b *testing.B) {
		run(b, g.c.Transport(base, caracal.WithScopes("tickets:read"), caracal.WithPropagation(caracal.PropagateAlways)))
	})
}

// BenchmarkGoverned is a governed GET against caracaltest over loopback:
// mint at the STS, then Gateway, STS re-exchange and upstream.
func BenchmarkGoverned(b *testing.B) {
	g := startGoverned(b, caracaltest.WithLimits(caracaltest.Limits{MintPerMinute: 1 << 30}))
	hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"))
	url := g.url(tickets, "/tickets/1")
	b.ReportAllocs()
	for b.Loop() {
		resp, err := get(b, hc, g.reader.Context(), url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatal(resp.Status)
		}
	}
}

// BenchmarkPrefetch measures the median latency of a governed GET with the
// STS slowed to 5 ms per mint and the Gateway to 8 ms per call, as on a
// real Caracal 1.0 stack:
//
//   - handwritten: a client that mints, then calls the Gateway;
//   - sdk: the SDK transport (mint on the request path);
//   - preminted: only the Gateway call, with a mandate minted beforehand;
//   - sdk-prefetch: the SDK transport with WithPrefetch(1), steady caller.
//
// Targets: sdk ≤ 1.05 × handwritten, sdk-prefetch ≤ 1.15 × preminted.
func BenchmarkPrefetch(b *testing.B) {
	g := startGoverned(b, caracaltest.WithLimits(caracaltest.Limits{MintPerMinute: 1 << 30}))
	g.st.Inject(caracaltest.RouteToken, caracaltest.Fault{Delay: 5 * time.Millisecond})
	g.st.Inject(caracaltest.RouteGateway, caracaltest.Fault{Delay: 8 * time.Millisecond})
	ctx := g.reader.Context()
	url := g.url(tickets, "/tickets/1")

	cfg := g.st.Config()
	sts := stsclient.New(stsclient.Config{
		BaseURL: cfg.STSURL, ZoneID: cfg.ZoneID, ApplicationID: cfg.ApplicationID, ClientSecret: cfg.ClientSecret,
		Resources: []string{tickets}, HTTPClient: &http.Client{}, Logger: slog.New(slog.DiscardHandler),
	})
	mintReq := stsclient.MintRequest{Resource: tickets, Scopes: []string{"tickets:read"},
		AgentSessionID: g.reader.ID(), DelegationEdgeID: g.reader.Agent().DelegationID()}
	plain := &http.Client{}
	gatewayCall := func(b *testing.B, token string) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, g.st.GatewayURL()+"/tickets/1", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set(wire.HeaderResource, tickets)
		resp, err := plain.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatal(resp.Status)
		}
	}
	sdkCall := func(b *testing.B, hc *http.Client) {
		resp, err := get(b, hc, ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatal(resp.Status)
		}
	}
	measure := func(b *testing.B, op func(b *testing.B) time.Duration) {
		var lat []time.Duration
		for b.Loop() {
			lat = append(lat, op(b))
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "p90-ms")
	}

	b.Run("handwritten", func(b *testing.B) {
		measure(b, func(b *testing.B) time.Duration {
			t0 := time.Now()
			tok, err := sts.Mint(ctx, mintReq)
			if err != nil {
				b.Fatal(err)
			}
			gatewayCall(b, tok.Value)
			return time.Since(t0)
		})
	})
	b.Run("sdk", func(b *testing.B) {
		hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"))
		measure(b, func(b *testing.B) time.Duration {
			t0 := time.Now()
			sdkCall(b, hc)
			return time.Since(t0)
		})
	})
	b.Run("preminted", func(b *testing.B) {
		measure(b, func(b *testing.B) time.Duration {
			b.StopTimer()
			tok, err := sts.Mint(ctx, mintReq)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			t0 := time.Now()
			gatewayCall(b, tok.Value)
			return time.Since(t0)
		})
	})
	b.Run("sdk-prefetch", func(b *testing.B) {
		hc := g.c.HTTPClient(caracal.WithScopes("tickets:read"), caracal.WithPrefetch(1))
		sdkCall(b, hc) // the first request mints on its path and starts the pool
		measure(b, func(b *testing.B) time.Duration {
			t0 := time.Now()
			sdkCall(b, hc)
			return time.Since(t0)
		})
	})
}

// BenchmarkMiddleware is the middleware's cost per request with a no-op
// handler: trusted propagation (no verification), and verification of a
// resource token with a warm key cache.
func BenchmarkMiddleware(b *testing.B) {
	benchMiddleware(b, func(b *testing.B, h http.Handler, hdr http.Header) {
		req := httptest.NewRequest(http.MethodGet, "/tickets/42", nil)
		req.Header = hdr
		w := httptest.NewRecorder()
		for b.Loop() {
			h.ServeHTTP(w, req)
		}
	})
}

// benchMiddleware runs serve for each middleware case on a no-op handler,
// after one request that must pass (which also warms the key cache).
func benchMiddleware(b *testing.B, serve func(b *testing.B, h http.Handler, hdr http.Header)) {
	s := newMWSigner(b, "kid-1")
	var fetches atomic.Int32
	c := mwClient(b, jwksClient(s, &fetches))
	noop := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	run := func(b *testing.B, opt caracal.MiddlewareOption, hdr http.Header) {
		mw, err := c.Middleware(opt)
		require.NoError(b, err)
		h := mw(noop)
		warm := httptest.NewRequest(http.MethodGet, "/tickets/42", nil)
		warm.Header = hdr
		w := httptest.NewRecorder()
		h.ServeHTTP(w, warm)
		require.Equal(b, http.StatusOK, w.Code)
		b.ReportAllocs()
		serve(b, h, hdr)
	}
	tp := "00-" + mwTrace + "-3c4d5e6f708192a3-01"
	b.Run("trusted", func(b *testing.B) {
		run(b, caracal.TrustedPropagation(), http.Header{
			"Authorization": {"Bearer " + s.sign(b, resourceClaims())},
			"Traceparent":   {tp},
			"Baggage":       {"caracal.agent_session=0198d0a2-7f55-7a2b-8c3d-4e5f60718293,caracal.delegation_edge=0198d0a3-9b00-7d11-8e22-334455667788,caracal.hop=1,tenant=acme"},
		})
	})
	// Every request behind the Gateway carries a token never seen before:
	// with the token cache off, each one pays the full verification (the
	// key cache is warm).
	b.Run("verified-new-token", func(b *testing.B) {
		run(b, caracal.VerifyTokens(mwResource, caracal.VerifyCacheSize(0)), http.Header{
			"Authorization": {"Bearer " + s.sign(b, resourceClaims())},
			"Traceparent":   {tp},
		})
	})
	// A token presented again (a session token, a retry) is remembered.
	b.Run("verified-repeated-token", func(b *testing.B) {
		run(b, caracal.VerifyTokens(mwResource), http.Header{
			"Authorization": {"Bearer " + s.sign(b, resourceClaims())},
			"Traceparent":   {tp},
		})
	})
}

// BenchmarkRoundTripParallel is the in-memory half of BenchmarkRoundTrip
// with every P sending at once through one transport, as the goroutines of
// a service share one: ns/op at -cpu 2 near half of -cpu 1 means nothing
// in the transport serialises them.
func BenchmarkRoundTripParallel(b *testing.B) {
	g := startGoverned(b)
	canned := rtFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
	})
	run := func(b *testing.B, rt http.RoundTripper) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			req, err := http.NewRequestWithContext(g.reader.Context(), http.MethodGet, "http://api.other.test/items/1", nil)
			if err != nil {
				b.Error(err)
				return
			}
			for pb.Next() {
				resp, err := rt.RoundTrip(req)
				if err != nil {
					b.Error(err)
					return
				}
				_ = resp.Body.Close()
			}
		})
	}
	b.Run("stub-bare", func(b *testing.B) { run(b, canned) })
	b.Run("stub-sdk-nonbound", func(b *testing.B) {
		run(b, g.c.Transport(canned, caracal.WithScopes("tickets:read")))
	})
	b.Run("stub-sdk-nonbound-propagate", func(b *testing.B) {
		run(b, g.c.Transport(canned, caracal.WithScopes("tickets:read"), caracal.WithPropagation(caracal.PropagateAlways)))
	})
}

// BenchmarkMiddlewareParallel is BenchmarkMiddleware with every P serving
// requests at once through one middleware, as an HTTP server does: the
// token and key caches are shared by all of them.
func BenchmarkMiddlewareParallel(b *testing.B) {
	benchMiddleware(b, func(b *testing.B, h http.Handler, hdr http.Header) {
		b.RunParallel(func(pb *testing.PB) {
			req := httptest.NewRequest(http.MethodGet, "/tickets/42", nil)
			req.Header = hdr.Clone()
			w := httptest.NewRecorder()
			for pb.Next() {
				h.ServeHTTP(w, req)
			}
			if w.Code != http.StatusOK {
				b.Error(w.Code)
			}
		})
	})
}
