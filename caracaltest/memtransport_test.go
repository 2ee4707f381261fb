package caracaltest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// memTestTransport serves h at http://svc.test.
func memTestTransport(ctx context.Context, h http.Handler) *memTransport {
	return &memTransport{stack: ctx, hosts: map[string]http.Handler{"svc.test": h}}
}

func TestMemTransportRoundTrip(t *testing.T) {
	var got *http.Request
	var gotBody string
	tr := memTestTransport(t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		w.Header().Set("Trailer", "X-Done")
		w.Header().Set("X-Reply", "yes")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "hello")
		w.Header().Set("X-Done", "true")
	}))
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://SVC.test:80/a/b?c=d", strings.NewReader("payload"))
	require.NoError(t, err)
	req.Header.Set("X-In", "1")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())

	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, "201 Created", resp.Status)
	assert.Equal(t, "yes", resp.Header.Get("X-Reply"))
	assert.Equal(t, "hello", string(body))
	assert.Equal(t, "true", resp.Trailer.Get("X-Done"))
	assert.Same(t, req, resp.Request)

	assert.Equal(t, http.MethodPost, got.Method)
	assert.Equal(t, "/a/b", got.URL.Path)
	assert.Equal(t, "c=d", got.URL.RawQuery)
	assert.Equal(t, "/a/b?c=d", got.RequestURI)
	assert.Equal(t, "SVC.test:80", got.Host)
	assert.Equal(t, "1", got.Header.Get("X-In"))
	assert.Equal(t, int64(len("payload")), got.ContentLength)
	assert.Equal(t, "payload", gotBody)
}

func TestMemTransportDefaultsLikeNetHTTP(t *testing.T) {
	tr := memTestTransport(t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/empty" {
			return // no write at all: an empty 200
		}
		_, _ = io.WriteString(w, "<html>hi</html>")
	}))
	resp, err := (&http.Client{Transport: tr}).Get("http://svc.test/page")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Equal(t, "<html>hi</html>", string(b))

	resp, err = (&http.Client{Transport: tr}).Get("http://svc.test/empty")
	require.NoError(t, err)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, b)
}

func TestMemTransportUnknownHost(t *testing.T) {
	tr := memTestTransport(t.Context(), http.NotFoundHandler())
	closed := false
	body := &closeRecorder{Reader: strings.NewReader("x"), closed: &closed}
	req, _ := http.NewRequest(http.MethodPost, "http://elsewhere.test/", body)
	_, err := tr.RoundTrip(req)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "elsewhere.test")
	assert.True(t, closed, "the request body is closed on every error")
}

type closeRecorder struct {
	io.Reader
	closed *bool
}

func (c *closeRecorder) Close() error { *c.closed = true; return nil }

func TestMemTransportStreams(t *testing.T) {
	second := make(chan struct{})
	tr := memTestTransport(t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		<-second
		_, _ = io.WriteString(w, "second")
	}))
	resp, err := (&http.Client{Transport: tr}).Get("http://svc.test/")
	require.NoError(t, err)
	defer resp.Body.Close()
	buf := make([]byte, 64)
	n, err := resp.Body.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "first", string(buf[:n]), "the first chunk arrives before the handler finishes")
	close(second)
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "second", string(rest))
}

func TestMemTransportContextCancelBeforeHeaders(t *testing.T) {
	var returned atomic.Bool
	started := make(chan struct{})
	tr := memTestTransport(t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer returned.Store(true)
		close(started)
		<-r.Context().Done()
	}))
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc.test/", nil)
	errc := make(chan error, 1)
	go func() {
		_, err := tr.RoundTrip(req)
		errc <- err
	}()
	<-started
	cancel()
	err := <-errc
	require.ErrorIs(t, err, context.Canceled)
	assert.True(t, returned.Load(), "RoundTrip returns only after the handler has")
}

func TestMemTransportBodyCloseStopsHandler(t *testing.T) {
	var returned atomic.Bool
	var writeErr error
	tr := memTestTransport(t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer returned.Store(true)
		chunk := make([]byte, 32<<10)
		for {
			if _, writeErr = w.Write(chunk); writeErr != nil {
				return
			}
		}
	}))
	resp, err := (&http.Client{Transport: tr}).Get("http://svc.test/")
	require.NoError(t, err)
	_, err = io.ReadFull(resp.Body, make([]byte, 1000))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.True(t, returned.Load(), "Close waits for the handler")
	assert.Error(t, writeErr)
	_, err = resp.Body.Read(make([]byte, 1))
	assert.Error(t, err, "reading a closed body fails")
	assert.NotErrorIs(t, err, io.EOF, "reading a closed body fails, rather than ending")
}

func TestMemTransportContextCancelDuringBody(t *testing.T) {
	tr := memTestTransport(t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc.test/", nil)
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	buf := make([]byte, 7)
	_, err = io.ReadFull(resp.Body, buf)
	require.NoError(t, err)
	cancel()
	_, err = resp.Body.Read(buf)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestMemTransportDrop(t *testing.T) {
	tr := memTestTransport(t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/late" {
			_, _ = io.WriteString(w, "part")
			w.(http.Flusher).Flush()
		}
		panic(http.ErrAbortHandler)
	}))
	_, err := (&http.Client{Transport: tr}).Get("http://svc.test/early")
	require.Error(t, err)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Contains(t, err.Error(), "connection dropped")

	resp, err := (&http.Client{Transport: tr}).Get("http://svc.test/late")
	require.NoError(t, err, "the status was sent before the drop")
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	assert.Equal(t, "part", string(b))
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
}

// A handler's panic fails the request, and is logged with its stack to the
// standard logger, as a server of net/http logs it; http.ErrAbortHandler is
// not logged.
func TestMemTransportHandlerPanicIsATransportError(t *testing.T) {
	var logged bytes.Buffer
	log.SetOutput(&logged)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })
	tr := memTestTransport(t.Context(), http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/abort" {
			panic(http.ErrAbortHandler)
		}
		panic("boom")
	}))
	_, err := (&http.Client{Transport: tr}).Get("http://svc.test/abort")
	require.Error(t, err)
	assert.Empty(t, logged.String())

	_, err = (&http.Client{Transport: tr}).Get("http://svc.test/")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "boom")
	assert.Contains(t, logged.String(), "panic serving GET http://svc.test/: boom")
	assert.Contains(t, logged.String(), "TestMemTransportHandlerPanicIsATransportError", "the handler's stack")
}

func TestMemTransportStackClosed(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	blocked := make(chan struct{})
	tr := memTestTransport(ctx, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(blocked)
		<-r.Context().Done() // the stack closing ends the request
	}))
	errc := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr}).Get("http://svc.test/")
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-blocked
	cancel()
	require.NoError(t, <-errc, "a request cut by Close gets the handler's (empty) answer")
	_, err := (&http.Client{Transport: tr}).Get("http://svc.test/")
	assert.ErrorIs(t, err, errStackClosed)
}

func TestMemTransportInSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := memTestTransport(t.Context(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(time.Minute):
				_, _ = io.WriteString(w, "late")
			case <-r.Context().Done():
			}
		}))
		start := time.Now()
		resp, err := (&http.Client{Transport: tr}).Get("http://svc.test/")
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		require.NoError(t, resp.Body.Close())
		assert.Equal(t, "late", string(b))
		assert.Equal(t, time.Minute, time.Since(start), "the bubble's clock ran, not the wall clock")

		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc.test/", nil)
		_, err = (&http.Client{Transport: tr}).Do(req)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		// synctest.Test fails if any goroutine is left behind.
	})
}

func TestMemPipeBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newMemPipe(t.Context())
		big := make([]byte, memPipeLimit+10)
		done := make(chan struct{})
		go func() {
			defer close(done)
			n, err := p.write(big)
			assert.NoError(t, err)
			assert.Equal(t, len(big), n)
			p.closeWrite(io.EOF)
		}()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("a write past the limit must wait for the reader")
		default:
		}
		got, err := io.ReadAll(readerFunc(func(b []byte) (int, error) { return p.read(t.Context(), b) }))
		require.NoError(t, err)
		assert.Len(t, got, len(big))
		<-done
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

func TestMemPipeWriterStopsOnContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		p := newMemPipe(ctx)
		errc := make(chan error, 1)
		go func() {
			_, err := p.write(make([]byte, memPipeLimit+1))
			errc <- err
		}()
		synctest.Wait()
		cancel()
		assert.True(t, errors.Is(<-errc, context.Canceled))
	})
}
