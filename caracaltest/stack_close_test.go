package caracaltest_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/caracaltest"
)

// TestCloseLeavesNoGoroutines proves over loopback that Close stops every
// listener, closes every connection and leaves none of the stack's
// goroutines behind. It compares goroutine identities, not counts, so
// goroutines of other tests or of the runtime cannot hide or fake a leak.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := stackGoroutines()
	entered := make(chan struct{})
	s, err := caracaltest.New(caracaltest.WithResource(parkingResource(entered)))
	require.NoError(t, err)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	w := wire{t: t, s: s, hc: &http.Client{Transport: tr}}
	w.lifecycle()
	r := w.do("GET", s.UpstreamURL(tickets)+"/x", nil)
	require.Equal(t, 200, r.status)

	// An idle keep-alive connection the client never closes.
	idle, err := net.Dial("tcp", strings.TrimPrefix(s.CoordinatorURL(), "http://"))
	require.NoError(t, err)
	defer idle.Close()
	_, err = io.WriteString(idle, "GET /health HTTP/1.1\r\nHost: coordinator\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	_, _ = io.Copy(io.Discard, resp.Body)

	// A request still running when Close starts.
	inflight := parkRequest(t, s, tr)
	<-entered

	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	<-inflight // Close ended the delayed request

	for _, u := range []string{s.STSURL(), s.CoordinatorURL(), s.GatewayURL(), s.UpstreamURL(tickets)} {
		c, err := net.Dial("tcp", strings.TrimPrefix(u, "http://"))
		if err == nil {
			c.Close()
		}
		assert.Error(t, err, "%s still accepts connections after Close", u)
	}
	require.NoError(t, idle.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = idle.Read(make([]byte, 1))
	var ne net.Error
	assert.False(t, errors.As(err, &ne) && ne.Timeout(), "Close closes idle connections: %v", err)

	// Server connection goroutines end just after their connection closes,
	// and net/http offers no way to wait for that: wait for the goroutines
	// this test started to be gone.
	var leaked []string
	ok := assert.Eventually(t, func() bool {
		leaked = leaked[:0]
		for id, stack := range stackGoroutines() {
			if _, old := before[id]; !old {
				leaked = append(leaked, stack)
			}
		}
		return len(leaked) == 0
	}, 5*time.Second, 5*time.Millisecond, "goroutines left after Close")
	if !ok {
		t.Logf("leaked goroutines:\n%s", strings.Join(leaked, "\n\n"))
	}
}

// TestCloseLeavesNoGoroutinesInMemory runs an InMemory stack inside a
// synctest bubble: the bubble ends only once every goroutine started in it
// has exited, and fails if one stays blocked.
func TestCloseLeavesNoGoroutinesInMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		entered := make(chan struct{})
		s, err := caracaltest.New(caracaltest.InMemory(), caracaltest.WithResource(parkingResource(entered)))
		require.NoError(t, err)
		w := wire{t: t, s: s, hc: s.HTTPClient()}
		w.lifecycle()
		r := w.do("GET", s.UpstreamURL(tickets)+"/x", nil)
		require.Equal(t, 200, r.status)

		inflight := parkRequest(t, s, s.Transport())
		<-entered
		synctest.Wait()
		start := time.Now()
		require.NoError(t, s.Close())
		<-inflight
		assert.Zero(t, time.Since(start), "Close ends the delayed request at once")
	})
}

// stackGoroutines returns, by goroutine id, the stacks of the goroutines
// that run HTTP servers or code of package caracaltest.
func stackGoroutines() map[string]string {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "net/http.(*conn).serve") && !strings.Contains(g, "net/http.(*Server).Serve") &&
			!strings.Contains(g, "github.com/caracal-go/caracal/caracaltest.") {
			continue
		}
		if f := strings.Fields(g); len(f) > 1 && f[0] == "goroutine" {
			out[f[1]] = g
		}
	}
	return out
}

const parking = "resource://parking"

// parkingResource is a resource whose upstream closes entered on its first
// request and holds every request until the request's context ends.
func parkingResource(entered chan struct{}) caracaltest.Resource {
	var once sync.Once
	return caracaltest.Resource{
		Identifier: parking, ID: "res-parking", Scopes: []string{"parking:read"},
		Upstream: http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			once.Do(func() { close(entered) })
			<-r.Context().Done()
		}),
	}
}

// parkRequest sends a request to the parking upstream of s through rt and
// reports its outcome once Close has ended it.
func parkRequest(t *testing.T, s *caracaltest.Stack, rt http.RoundTripper) <-chan error {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.UpstreamURL(parking)+"/wait", nil)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		resp, err := rt.RoundTrip(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	return done
}

// TestCloseDoesNotWaitForAStalledReader: a client that took a response's
// headers and stopped reading leaves its handler blocked in a socket write,
// which no context cancellation ends. Close must still return.
func TestCloseDoesNotWaitForAStalledReader(t *testing.T) {
	wrote := make(chan struct{})
	var once sync.Once
	s, err := caracaltest.New(caracaltest.WithResource(caracaltest.Resource{
		Identifier: "resource://firehose", ID: "res-firehose", Scopes: []string{"firehose:read"},
		Upstream: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			chunk := make([]byte, 64<<10)
			for i := 0; ; i++ {
				if _, err := w.Write(chunk); err != nil {
					return
				}
				if i == 16 {
					once.Do(func() { close(wrote) })
				}
			}
		}),
	}))
	require.NoError(t, err)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(mustGet(t, s.UpstreamURL("resource://firehose")+"/"))
	require.NoError(t, err)
	defer resp.Body.Close()
	<-wrote // the handler is streaming; the client reads nothing more

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Close hangs on a handler blocked writing to a client that stopped reading")
	}
}

// TestInMemoryStalledRequestBody sends requests whose bodies never finish:
// as over a socket, the client's cancellation and the stack's Close end
// them, instead of leaving the round trip, and Close, waiting for a
// handler stuck reading the body.
func TestInMemoryStalledRequestBody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := caracaltest.Start(t, caracaltest.InMemory())
		send := func(ctx context.Context, u string) <-chan error {
			pr, pw := io.Pipe()
			t.Cleanup(func() { pw.Close() })
			req, err := http.NewRequestWithContext(ctx, "POST", u, pr)
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			done := make(chan error, 1)
			go func() {
				resp, err := s.HTTPClient().Do(req)
				if err == nil {
					resp.Body.Close()
				}
				done <- err
			}()
			return done
		}

		// The bubble's clock runs on (the sweeper ticks), so a round trip
		// that never ends shows as one that outlasts a minute of it.
		result := func(done <-chan error) error {
			select {
			case err := <-done:
				return err
			case <-time.After(time.Minute):
				t.Fatal("the round trip did not end")
				return nil
			}
		}

		ctx, cancel := context.WithCancel(t.Context())
		done := send(ctx, s.STSURL()+"/oauth/2/token")
		synctest.Wait()
		cancel()
		require.ErrorIs(t, result(done), context.Canceled)

		done = send(t.Context(), s.CoordinatorURL()+"/zones/zone-test/agents")
		synctest.Wait()
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		require.Error(t, result(done))
		require.NoError(t, result(closed))
	})
}
