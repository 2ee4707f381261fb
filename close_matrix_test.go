package caracal_test

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// closeCases are orders of shutdown; each ends with everything closed.
var closeCases = []struct {
	name string
	run  func(t *testing.T, w *closeWorld)
}{
	{"stack before client", func(t *testing.T, w *closeWorld) {
		svc, err := w.c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		hc := w.c.HTTPClient(caracal.WithScopes("tickets:read"), caracal.WithPrefetch(1))
		resp, err := w.get(w.reader.Context(), hc)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		synctest.Wait()

		require.NoError(t, w.st.Close())
		var err2 error
		within(t, 11*time.Second, "Client.Close", func() { err2 = w.c.Close(context.Background()) })
		assert.ErrorContains(t, err2, "retiring session "+w.reader.ID())
		assert.ErrorContains(t, err2, "retiring service "+svc.ID())
		assert.Equal(t, err2, w.c.Close(t.Context()))
	}},
	{"client while a service renews", func(t *testing.T, w *closeWorld) {
		svc := renewalHeld(t, w)
		within(t, 0, "Client.Close", func() { require.NoError(t, w.c.Close(context.Background())) })
		assert.ErrorIs(t, context.Cause(svc.Context()), caracal.ErrSessionClosed)
		info, _ := w.st.SessionInfo(svc.ID())
		assert.Equal(t, "terminated", info.Status)
	}},
	{"service while it renews, twice at once", func(t *testing.T, w *closeWorld) {
		svc := renewalHeld(t, w)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		within(t, 0, "Service.Close", func() {
			for i := range errs {
				wg.Go(func() { errs[i] = svc.Close(context.Background()) })
			}
			wg.Wait()
		})
		assert.NoError(t, errs[0])
		assert.NoError(t, errs[1])
		assert.Equal(t, 1, w.st.Count(caracaltest.RouteRetire), "one retire of the service")
		within(t, 0, "Client.Close", func() { require.NoError(t, w.c.Close(context.Background())) })
	}},
	{"session while a governed body streams", func(t *testing.T, w *closeWorld) {
		sent := make(chan struct{})
		require.NoError(t, w.st.SetUpstream("resource://tickets", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			rw.WriteHeader(http.StatusOK)
			chunk := make([]byte, 8<<10)
			for i := 0; ; i++ {
				if _, err := rw.Write(chunk); err != nil {
					return
				}
				rw.(http.Flusher).Flush()
				if i == 0 {
					close(sent)
				}
				select {
				case <-r.Context().Done():
					return
				case <-time.After(time.Second):
				}
			}
		})))
		hc := w.c.HTTPClient(caracal.WithScopes("tickets:read"))
		resp, err := w.get(w.reader.Context(), hc)
		require.NoError(t, err)
		<-sent
		_, err = io.ReadFull(resp.Body, make([]byte, 8<<10))
		require.NoError(t, err)
		within(t, 0, "Session.Close", func() { require.NoError(t, w.reader.Close(context.Background())) })
		_, err = io.Copy(io.Discard, resp.Body)
		assert.ErrorIs(t, err, caracal.ErrSessionClosed, "the request's context ended with the session")
		_ = resp.Body.Close()
		within(t, 0, "Client.Close", func() { require.NoError(t, w.c.Close(context.Background())) })
	}},
	{"client while the middleware fetches keys", func(t *testing.T, w *closeWorld) {
		server, err := w.st.NewClient()
		require.NoError(t, err)
		mw, err := server.Middleware(caracal.VerifyTokens("resource://tickets"))
		require.NoError(t, err)
		require.NoError(t, w.st.SetUpstream("resource://tickets", mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))))
		w.st.Inject(caracaltest.RouteJWKS, caracaltest.Fault{Delay: time.Second, Times: 1})
		hc := w.c.HTTPClient(caracal.WithScopes("tickets:read"))
		done := make(chan error, 1)
		go func() {
			resp, err := w.get(w.reader.Context(), hc)
			if err == nil {
				_ = resp.Body.Close()
			}
			done <- err
		}()
		synctest.Wait() // the key fetch waits at the STS
		within(t, 0, "Client.Close of the server", func() { require.NoError(t, server.Close(context.Background())) })
		require.NoError(t, <-done, "the request in flight completes")
		assert.Equal(t, 1, w.st.Count(caracaltest.RouteJWKS))
		within(t, 0, "Client.Close", func() { require.NoError(t, w.c.Close(context.Background())) })
	}},
	{"client while a prefetch mint runs", func(t *testing.T, w *closeWorld) {
		hc := w.c.HTTPClient(caracal.WithScopes("tickets:read"), caracal.WithPrefetch(1))
		resp, err := w.get(w.reader.Context(), hc)
		require.NoError(t, err)
		_ = resp.Body.Close()
		synctest.Wait() // pool full
		w.st.Inject(caracaltest.RouteToken, caracaltest.Fault{Delay: time.Hour})
		resp, err = w.get(w.reader.Context(), hc)
		require.NoError(t, err)
		_ = resp.Body.Close()
		synctest.Wait() // refill waits at the STS
		within(t, 0, "Client.Close", func() { require.NoError(t, w.c.Close(context.Background())) })
	}},
	{"parent session before child", func(t *testing.T, w *closeWorld) {
		child, err := w.c.Spawn(w.reader.Context())
		require.NoError(t, err)
		require.NoError(t, w.reader.Close(t.Context()))
		n := w.st.Count(caracaltest.RouteRetire)
		require.NoError(t, child.Close(t.Context()))
		assert.Equal(t, n, w.st.Count(caracaltest.RouteRetire), "the child ended with its parent")
		require.NoError(t, w.c.Close(t.Context()))
	}},
	{"parent service before child service", func(t *testing.T, w *closeWorld) {
		parent, err := w.c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		child, err := w.c.SpawnService(parent.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		require.NoError(t, parent.Close(t.Context()))
		<-child.Done()
		require.NoError(t, child.Close(t.Context()), "the child keeps its own lease, which Close retires")
		info, _ := w.st.SessionInfo(child.ID())
		assert.Equal(t, "terminated", info.Status)
		require.NoError(t, w.c.Close(t.Context()))
	}},
	{"everything with a cancelled context", func(t *testing.T, w *closeWorld) {
		svc, err := w.c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		// Each Close returns at once: nil if the retire was quick enough,
		// else the cancellation.
		maybeCancelled := func(err error) {
			if err != nil {
				assert.ErrorIs(t, err, context.Canceled)
			}
		}
		within(t, 0, "Service.Close", func() { maybeCancelled(svc.Close(ctx)) })
		select {
		case <-svc.Done():
		default:
			t.Error("the service ended when Close returned")
		}
		within(t, 0, "Session.Close", func() { maybeCancelled(w.reader.Close(ctx)) })
		var first error
		within(t, 0, "Client.Close", func() { first = w.c.Close(ctx) })
		maybeCancelled(first)
		// A later Close waits for what went on in the background.
		within(t, 0, "Client.Close", func() { assert.NoError(t, w.c.Close(context.Background())) })
	}},
	{"client with a cancelled context", func(t *testing.T, w *closeWorld) {
		_, err := w.c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		var first error
		within(t, 0, "Client.Close", func() { first = w.c.Close(ctx) })
		if first != nil {
			assert.ErrorIs(t, first, context.Canceled)
		}
		assert.NoError(t, w.c.Close(context.Background()), "a later Close waits for what went on in the background")
	}},
	{"attached handle then client", func(t *testing.T, w *closeWorld) {
		other, err := w.st.NewClient()
		require.NoError(t, err)
		svc, err := other.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		att, err := w.c.AttachService(t.Context(), svc.ID(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		within(t, 0, "attached Close", func() { require.NoError(t, att.Close(t.Context())) })
		within(t, 0, "Client.Close", func() { require.NoError(t, w.c.Close(t.Context())) })
		within(t, 0, "fenced Client.Close", func() { require.NoError(t, other.Close(t.Context())) })
	}},
	{"session while its request-path mint runs", func(t *testing.T, w *closeWorld) {
		hc := w.c.HTTPClient(caracal.WithScopes("tickets:read"))
		w.st.Inject(caracaltest.RouteToken, caracaltest.Fault{Delay: time.Second, Times: 1})
		done := make(chan error, 1)
		go func() {
			// A context that outlives the session still carries its agent.
			resp, err := w.get(context.WithoutCancel(w.reader.Context()), hc)
			if err == nil {
				_ = resp.Body.Close()
			}
			done <- err
		}()
		synctest.Wait() // the mint waits at the STS
		within(t, 0, "Session.Close", func() { require.NoError(t, w.reader.Close(context.Background())) })
		gw := w.st.Count(caracaltest.RouteGateway)
		assert.Error(t, <-done)
		assert.Equal(t, gw, w.st.Count(caracaltest.RouteGateway), "nothing reaches the Gateway after Close")
		require.NoError(t, w.c.Close(context.Background()))
	}},
	{"client while a governed body streams", func(t *testing.T, w *closeWorld) {
		body := streamingUpstream(t, w)
		hc := w.c.HTTPClient(caracal.WithScopes("tickets:read"))
		resp, err := w.get(w.reader.Context(), hc)
		require.NoError(t, err)
		<-body
		within(t, 0, "Client.Close", func() { require.NoError(t, w.c.Close(context.Background())) })
		_, err = io.Copy(io.Discard, resp.Body)
		assert.ErrorIs(t, err, caracal.ErrSessionClosed, "the request's context ended with the session")
		_ = resp.Body.Close()
	}},
	{"service while its governed body streams", func(t *testing.T, w *closeWorld) {
		body := streamingUpstream(t, w)
		parent, err := w.c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		svc, err := w.c.SpawnService(parent.Context(), caracal.HeartbeatAuto(), caracal.WithLabels("reader"),
			caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Hour)))
		require.NoError(t, err)
		hc := w.c.HTTPClient(caracal.WithScopes("tickets:read"))
		resp, err := w.get(context.WithoutCancel(svc.Context()), hc)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		<-body
		within(t, 0, "Service.Close", func() { require.NoError(t, svc.Close(context.Background())) })
		_, err = io.Copy(io.Discard, resp.Body)
		assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "the body does not end as if complete")
		_ = resp.Body.Close()
		require.NoError(t, w.c.Close(context.Background()))
	}},
	{"stack while a service renews, then service", func(t *testing.T, w *closeWorld) {
		svc := renewalHeld(t, w)
		require.NoError(t, w.st.Close())
		synctest.Wait()
		within(t, 11*time.Second, "Service.Close", func() {
			assert.ErrorContains(t, svc.Close(context.Background()), "retiring service "+svc.ID())
		})
		within(t, 11*time.Second, "Client.Close", func() {
			assert.ErrorContains(t, w.c.Close(context.Background()), "retiring service "+svc.ID(), "a service left running")
		})
	}},
	{"session while its prefetch refill runs", func(t *testing.T, w *closeWorld) {
		hc := w.c.HTTPClient(caracal.WithScopes("tickets:read"), caracal.WithPrefetch(1))
		resp, err := w.get(w.reader.Context(), hc)
		require.NoError(t, err)
		_ = resp.Body.Close()
		synctest.Wait()
		w.st.Inject(caracaltest.RouteToken, caracaltest.Fault{Delay: time.Second})
		resp, err = w.get(w.reader.Context(), hc)
		require.NoError(t, err)
		_ = resp.Body.Close()
		synctest.Wait() // the refill waits at the STS
		within(t, 0, "Session.Close", func() { require.NoError(t, w.reader.Close(context.Background())) })
		closed := time.Now()
		time.Sleep(time.Hour)
		synctest.Wait()
		for _, r := range requestsTo(w.st, caracaltest.RouteToken) {
			assert.False(t, r.At.After(closed), "a mint arrived after the session closed")
		}
		require.NoError(t, w.c.Close(context.Background()))
	}},
	{"client, session and service at once", func(t *testing.T, w *closeWorld) {
		svc := renewalHeld(t, w)
		errs := make([]error, 6)
		var wg sync.WaitGroup
		within(t, 0, "every Close", func() {
			for i := range 2 {
				wg.Go(func() { errs[3*i] = w.c.Close(context.Background()) })
				wg.Go(func() { errs[3*i+1] = w.reader.Close(context.Background()) })
				wg.Go(func() { errs[3*i+2] = svc.Close(context.Background()) })
			}
			wg.Wait()
		})
		for _, err := range errs {
			assert.NoError(t, err)
		}
		assert.Equal(t, 3, w.st.Count(caracaltest.RouteRetire), "root, reader and service, once each")
	}},
	{"client with a service's context", func(t *testing.T, w *closeWorld) {
		svc, err := w.c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		within(t, 0, "Client.Close", func() { require.NoError(t, w.c.Close(svc.Context())) })
		info, _ := w.st.SessionInfo(svc.ID())
		assert.Equal(t, "terminated", info.Status)
	}},
	{"attached handle while the older one renews", func(t *testing.T, w *closeWorld) {
		other, err := w.st.NewClient()
		require.NoError(t, err)
		svc, err := other.SpawnService(t.Context(), caracal.HeartbeatInterval(time.Second))
		require.NoError(t, err)
		w.st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Delay: 2 * time.Second, Times: 1})
		time.Sleep(time.Second)
		synctest.Wait() // the old handle's renewal waits
		att, err := w.c.AttachService(t.Context(), svc.ID(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		within(t, 0, "attached Close", func() { require.NoError(t, att.Close(t.Context())) })
		within(t, 2*time.Second, "fenced Close", func() { require.NoError(t, svc.Close(t.Context())) })
		require.NoError(t, w.c.Close(t.Context()))
		require.NoError(t, other.Close(t.Context()))
	}},
	{"service while a manual heartbeat runs", func(t *testing.T, w *closeWorld) {
		closeDuringHeartbeat(t, w, "Service.Close", func(svc *caracal.Service) error { return svc.Close(context.Background()) })
		require.NoError(t, w.c.Close(context.Background()))
	}},
	{"client while a manual heartbeat runs", func(t *testing.T, w *closeWorld) {
		closeDuringHeartbeat(t, w, "Client.Close", func(*caracal.Service) error { return w.c.Close(context.Background()) })
	}},
	{"service before its task child", func(t *testing.T, w *closeWorld) {
		svc, err := w.c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		child, err := w.c.Spawn(svc.Context())
		require.NoError(t, err)
		require.NoError(t, svc.Close(t.Context()))
		assert.ErrorIs(t, context.Cause(child.Context()), caracal.ErrSessionClosed)
		n := w.st.Count(caracaltest.RouteRetire)
		require.NoError(t, child.Close(t.Context()))
		assert.Equal(t, n, w.st.Count(caracaltest.RouteRetire), "the child ended with the service")
		require.NoError(t, w.c.Close(t.Context()))
	}},
	{"attached on the same client, then client", func(t *testing.T, w *closeWorld) {
		svc, err := w.c.SpawnService(t.Context(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		att, err := w.c.AttachService(t.Context(), svc.ID(), caracal.HeartbeatAuto())
		require.NoError(t, err)
		assert.ErrorIs(t, context.Cause(svc.Context()), caracal.ErrLeaseFenced)
		require.NoError(t, w.c.Close(t.Context()))
		assert.Equal(t, 3, w.st.Count(caracaltest.RouteRetire), "root, reader and the service once")
		assert.NoError(t, svc.Close(t.Context()))
		assert.NoError(t, att.Close(t.Context()))
	}},
	{"client while an approval is awaited", func(t *testing.T, w *closeWorld) {
		root, err := w.c.Spawn(t.Context())
		require.NoError(t, err)
		admin, err := w.c.Spawn(root.Context(), caracal.WithLabels("admin"),
			caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:delete"}, "resource://tickets", caracal.Constraints{}, time.Hour)))
		require.NoError(t, err)
		hc := w.c.HTTPClient(caracal.WithScopes("tickets:delete"), caracal.WithPrefetch(1))
		_, err = w.get(admin.Context(), hc)
		var held *caracal.ApprovalRequiredError
		require.ErrorAs(t, err, &held)
		waited := make(chan error, 1)
		go func() { waited <- w.c.WaitApproval(context.Background(), held.ApprovalID) }()
		synctest.Wait() // the long poll waits at the STS
		within(t, 0, "Client.Close", func() { require.NoError(t, w.c.Close(context.Background())) })
		assert.ErrorIs(t, <-waited, caracal.ErrClosed)
	}},
}

// Each shutdown order in closeCases, run in its own bubble, returns within
// its bounds with the errors it documents, and leaves no goroutine of the SDK
// running and no request reaching the stack afterwards.
func TestCloseMatrix(t *testing.T) {
	for _, tc := range closeCases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newCloseWorld(t)
				tc.run(t, w)
				// Everything is closed: nothing of the SDK runs on, and
				// nothing reaches the stack any more.
				synctest.Wait()
				assert.Empty(t, sdkGoroutines(), "nothing of the SDK runs after everything closed")
				n := len(w.st.Requests())
				time.Sleep(time.Hour)
				synctest.Wait()
				after := w.st.Requests()
				if !assert.Len(t, after, n, "no request after everything closed") {
					for _, r := range after[n:] {
						t.Logf("late: %s %s %d", r.Method, r.Path, r.Status)
					}
				}
			})
		})
	}
}
