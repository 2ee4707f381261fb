package caracal_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// sdkGoroutines returns the stacks of the goroutines of the calling
// synctest bubble running SDK code (the package and its internal packages,
// not the test stack or tests).
func sdkGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if !strings.Contains(header, "synctest bubble") || strings.Contains(g, "_test.go") || strings.Contains(g, "caracal/caracaltest.") {
			continue
		}
		if strings.Contains(g, "github.com/caracal-go/caracal.") || strings.Contains(g, "github.com/caracal-go/caracal/internal/") {
			out = append(out, g)
		}
	}
	return out
}

// Every public call racing with Close either works or fails with ErrClosed;
// once Close returns, nothing of the SDK runs, every Close returns the same
// outcome, and a call after it fails with ErrClosed without a request.
func TestClientCloseRacingCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient()
		require.NoError(t, err)
		root, err := c.Spawn(t.Context())
		require.NoError(t, err)
		reader, err := c.Spawn(root.Context(), caracal.WithLabels("reader"), caracal.WithGrant(caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{MaxHops: 3}, time.Hour)))
		require.NoError(t, err)
		hc := c.HTTPClient(caracal.WithScopes("tickets:read"), caracal.WithPrefetch(2))

		var wg sync.WaitGroup
		ok := func(err error) {
			if err != nil {
				assert.ErrorIs(t, err, caracal.ErrClosed)
			}
		}
		for range 4 {
			wg.Go(func() {
				s, err := c.Spawn(t.Context())
				ok(err)
				if err == nil {
					ok(s.Close(t.Context()))
				}
			})
			wg.Go(func() {
				s, err := c.SpawnService(t.Context(), caracal.HeartbeatAuto())
				ok(err)
				if err == nil {
					// Close may have closed the service first.
					if _, err := s.Heartbeat(t.Context()); err != nil && !errors.Is(err, caracal.ErrSessionClosed) {
						assert.ErrorIs(t, err, caracal.ErrClosed)
					}
				}
			})
			wg.Go(func() {
				// Close may have closed reader first.
				if _, err := c.Headers(reader.Context()); err != nil && !errors.Is(err, caracal.ErrSessionClosed) {
					assert.ErrorIs(t, err, caracal.ErrClosed)
				}
			})
			req, err := http.NewRequestWithContext(reader.Context(), http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets/1", nil)
			require.NoError(t, err)
			wg.Go(func() {
				resp, err := hc.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					return
				}
				// Close may have closed reader first.
				if !errors.Is(err, caracal.ErrSessionClosed) {
					assert.ErrorIs(t, err, caracal.ErrClosed)
				}
			})
		}
		errs := make([]error, 3)
		var closers sync.WaitGroup
		for i := range errs {
			closers.Go(func() { errs[i] = c.Close(context.Background()) })
		}
		closers.Wait()
		wg.Wait()
		for _, err := range errs[1:] {
			assert.Equal(t, errs[0], err, "every Close returns the same outcome")
		}
		synctest.Wait()
		assert.Empty(t, sdkGoroutines(), "nothing of the client runs after Close")

		calls := len(st.Requests())
		_, err = c.Spawn(t.Context())
		assert.ErrorIs(t, err, caracal.ErrClosed)
		_, err = c.SpawnService(t.Context())
		assert.ErrorIs(t, err, caracal.ErrClosed)
		_, err = c.AttachService(t.Context(), root.ID())
		assert.ErrorIs(t, err, caracal.ErrClosed)
		_, err = c.Resume(t.Context(), root.ID())
		assert.ErrorIs(t, err, caracal.ErrClosed)
		_, err = c.Headers(reader.Context())
		assert.ErrorIs(t, err, caracal.ErrClosed)
		_, err = c.Delegate(reader.Context(), root.ID(), caracal.Grant.Narrow([]string{"tickets:read"}, "resource://tickets", caracal.Constraints{}, time.Minute))
		assert.ErrorIs(t, err, caracal.ErrClosed)
		_, err = c.AcceptDelegation(reader.Context(), "x")
		assert.ErrorIs(t, err, caracal.ErrClosed)
		assert.ErrorIs(t, c.RevokeDelegation(t.Context(), "x"), caracal.ErrClosed)
		assert.ErrorIs(t, c.WaitApproval(t.Context(), "x"), caracal.ErrClosed)
		req, err := http.NewRequestWithContext(reader.Context(), http.MethodGet, st.UpstreamURL("resource://tickets")+"/tickets/1", nil)
		require.NoError(t, err)
		_, err = c.HTTPClient(caracal.WithPrefetch(1)).Do(req)
		assert.ErrorIs(t, err, caracal.ErrClosed)
		assert.NoError(t, root.Close(t.Context()))
		assert.Equal(t, errs[0], c.Close(t.Context()))
		assert.Len(t, st.Requests(), calls, "no call after Close")
		synctest.Wait()
		assert.Empty(t, sdkGoroutines())
	})
}
