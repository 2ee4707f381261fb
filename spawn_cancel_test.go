package caracal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
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

// lostStart lets the next session start reach the Coordinator, which starts
// the session, and then cancels the caller, as when the caller gives up
// while the answer is on its way: the caller never sees the session id.
type lostStart struct {
	base   http.RoundTripper
	cancel context.CancelFunc

	mu     sync.Mutex
	armed  bool
	lost   string // the id of the session whose answer was lost
	onLost func() // if set, runs once the answer is lost
}

func (l *lostStart) arm(cancel context.CancelFunc) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.armed, l.cancel = true, cancel
}

func (l *lostStart) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(req)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil || !l.armed || req.Method != http.MethodPost || req.URL.Path != "/zones/zone-test/agents" {
		return resp, err
	}
	l.armed = false
	l.lost = startedID(resp)
	if l.onLost != nil {
		l.onLost()
	}
	l.cancel()
	<-req.Context().Done()
	return nil, req.Context().Err()
}

// A start whose caller gave up after the Coordinator started the session
// leaves no session running that nobody can close: with a generated key the
// session id is known to no one, so the client retires it in the background
// (Client.Close waits for that). A caller-given key is the caller's way back
// to the session, so that one is left for the caller to replay.
func TestSpawnCancelledAfterTheStartLeavesNoSession(t *testing.T) {
	st := caracaltest.Start(t)
	spawns := map[string]func(c *caracal.Client, ctx context.Context) error{
		"task": func(c *caracal.Client, ctx context.Context) error {
			_, err := c.Spawn(ctx, caracal.WithLabels("reader"))
			return err
		},
		"service": func(c *caracal.Client, ctx context.Context) error {
			_, err := c.SpawnService(ctx)
			return err
		},
		"keyed task": func(c *caracal.Client, ctx context.Context) error {
			_, err := c.Spawn(ctx, caracal.WithIdempotencyKey("job-9"))
			return err
		},
	}
	for name, spawn := range spawns {
		lost := &lostStart{base: http.DefaultTransport.(*http.Transport).Clone()}
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: lost}))
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		lost.arm(cancel)
		err = spawn(c, ctx)
		require.ErrorIs(t, err, context.Canceled, name)
		require.NotEmpty(t, lost.lost, name)
		if name == "keyed task" {
			again, err := c.Spawn(t.Context(), caracal.WithIdempotencyKey("job-9"))
			require.NoError(t, err, "the caller's key leads back to the session")
			assert.Equal(t, lost.lost, again.ID())
			require.NoError(t, c.Close(t.Context()))
			continue
		}
		require.NoError(t, c.Close(t.Context()), name)
		info, ok := st.SessionInfo(lost.lost)
		require.True(t, ok, name)
		assert.Equal(t, "terminated", info.Status, "%s: the session nobody can reach was retired", name)
	}

	// A start whose ctx ended before it was sent starts nothing, and so has
	// nothing to retire.
	c, err := st.NewClient()
	require.NoError(t, err)
	_, err = c.Spawn(t.Context()) // the lifecycle token is cached
	require.NoError(t, err)
	st.ResetRecord()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = c.Spawn(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.NoError(t, c.Close(t.Context()))
	assert.Zero(t, st.Count(caracaltest.RouteStart))
}

// Closing a parent gives up the starts of its children still under way
// (their ctx derives from the parent's). Looking for the session of such a
// start finds the parent gone: nothing was started, and nothing is reported
// as left running.
func TestSpawnGivenUpUnderAClosedParentIsNotReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		var logs lockedBuffer
		c, err := st.NewClient(caracal.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))))
		require.NoError(t, err)
		root, err := c.Spawn(t.Context())
		require.NoError(t, err)

		// The child's start, and the one looking for its session, are held
		// until after the parent is retired.
		st.Inject(caracaltest.RouteStart, caracaltest.Fault{Delay: 5 * time.Second, Times: 2})
		done := make(chan error, 1)
		go func() {
			_, err := c.Spawn(root.Context())
			done <- err
		}()
		synctest.Wait()
		require.NoError(t, root.Close(t.Context()))
		require.ErrorIs(t, <-done, caracal.ErrSessionClosed)
		require.NoError(t, c.Close(t.Context()))
		assert.Equal(t, 3, st.Count(caracaltest.RouteStart), "the root's, the child's, and the child's again")
		assert.Empty(t, logs.String())
	})
}

// lostAnswer lets the first session start reach the Coordinator, which
// starts the session, and loses the answer, as when a connection resets.
type lostAnswer struct {
	base http.RoundTripper

	mu   sync.Mutex
	lost string // the id of the session whose answer was lost
}

func (l *lostAnswer) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(req)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil || l.lost != "" || req.Method != http.MethodPost || req.URL.Path != "/zones/zone-test/agents" {
		return resp, err
	}
	l.lost = startedID(resp)
	return nil, errors.New("connection reset by peer")
}

// startedID reads the session id off the answer to a session start, and
// closes its body.
func startedID(resp *http.Response) string {
	var s struct {
		ID string `json:"agent_session_id"`
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	_ = json.Unmarshal(b, &s)
	return s.ID
}

// lostStartClient returns a client of st whose next start reaches the
// Coordinator, which starts the session, but loses the answer; the two
// retries that follow meet a 503.
func lostStartClient(t *testing.T, st *caracaltest.Stack) (*caracal.Client, *lostAnswer) {
	t.Helper()
	lost := &lostAnswer{base: st.Transport()}
	c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: lost}))
	require.NoError(t, err)
	st.Inject(caracaltest.RouteStart, caracaltest.Fault{Times: 1})
	st.Inject(caracaltest.RouteStart, caracaltest.Fault{Status: http.StatusServiceUnavailable, Times: 2})
	return c, lost
}

// A start under a generated key whose retries run out after an attempt
// that started the session leaves no session running: the caller gets the
// error, and the client retires the session nobody can reach.
func TestSpawnWhoseRetriesRunOutLeavesNoSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, lost := lostStartClient(t, st)
		_, err := c.Spawn(t.Context())
		var apiErr *caracal.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusServiceUnavailable, apiErr.StatusCode)
		require.NotEmpty(t, lost.lost)

		require.NoError(t, c.Close(t.Context()))
		info, ok := st.SessionInfo(lost.lost)
		require.True(t, ok)
		assert.Equal(t, "terminated", info.Status, "the session nobody can reach was retired")
	})
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A start under a generated key whose caller gives up while it waits to
// send the start again, after an attempt that started the session, leaves
// no session running either.
func TestSpawnCancelledDuringARetryPauseLeavesNoSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, lost, cancel, done := spawnInRetryPause(t, st)
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
		require.NotEmpty(t, lost.lost)

		require.NoError(t, c.Close(t.Context()))
		info, ok := st.SessionInfo(lost.lost)
		require.True(t, ok)
		assert.Equal(t, "terminated", info.Status, "the session nobody can reach was retired")
	})
}

// When looking for the session of a given-up start meets a key conflict,
// whether a session was started stays unknown: the client says so in a
// warning instead of taking the refusal for "nothing was started".
func TestSpawnGivenUpWhoseLookupConflictsIsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		var logs lockedBuffer
		lost := &lostStart{base: st.Transport(), onLost: func() {
			st.Inject(caracaltest.RouteStart, caracaltest.Fault{Status: http.StatusConflict, Code: "idempotency_key_conflict", Times: 1})
		}}
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: lost}),
			caracal.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))))
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		lost.arm(cancel)
		_, err = c.Spawn(ctx)
		require.ErrorIs(t, err, context.Canceled)
		require.NoError(t, c.Close(t.Context()))
		assert.Equal(t, 2, st.Count(caracaltest.RouteStart), "the start, and the one looking for its session")
		assert.Contains(t, logs.String(), "a session start was given up")
		assert.Contains(t, logs.String(), "idempotency_key_conflict")
	})
}

// A start whose first attempt may have started the session stays one that
// may have executed when the retries after it meet refusals that executed
// nothing (a 429): once they run out, the session it started is retired.
func TestSpawnWhoseRetriesRunOutOnRateLimitsLeavesNoSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		lost := &lostAnswer{base: st.Transport()}
		c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: lost}))
		require.NoError(t, err)
		st.Inject(caracaltest.RouteStart, caracaltest.Fault{Times: 1})
		st.Inject(caracaltest.RouteStart, caracaltest.Fault{Status: http.StatusTooManyRequests, Times: 2})
		_, err = c.Spawn(t.Context())
		var apiErr *caracal.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusTooManyRequests, apiErr.StatusCode)
		require.NotEmpty(t, lost.lost)

		require.NoError(t, c.Close(t.Context()))
		info, ok := st.SessionInfo(lost.lost)
		require.True(t, ok)
		assert.Equal(t, "terminated", info.Status, "the session nobody can reach was retired")
	})
}

// spawnInRetryPause starts, inside a synctest bubble, a Spawn on a new
// client of st whose first start answer is lost, and returns once the start
// waits its retry pause: cancel gives the Spawn up, and its error comes on
// spawned. lost.lost is the session the first attempt started.
func spawnInRetryPause(t *testing.T, st *caracaltest.Stack) (c *caracal.Client, lost *lostAnswer, cancel context.CancelFunc, spawned <-chan error) {
	t.Helper()
	lost = &lostAnswer{base: st.Transport()}
	c, err := st.NewClient(caracal.WithHTTPClient(&http.Client{Transport: lost}))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	errs := make(chan error, 1)
	go func() {
		_, err := c.Spawn(ctx)
		errs <- err
	}()
	synctest.Wait() // the first answer is lost; the retry waits its backoff
	return c, lost, cancel, errs
}
