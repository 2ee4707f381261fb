package caracaltest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
)

// memBody is the response body of an in-memory request.
type memBody struct {
	rw     *memResponseWriter
	ctx    context.Context // the client request's context
	cancel context.CancelFunc
	done   <-chan struct{}
	once   sync.Once
}

// Read reads the body; at its end it fills in the response's trailers, on
// the caller's goroutine, so that reading resp.Trailer never races with
// the handler.
func (b *memBody) Read(p []byte) (int, error) {
	n, err := b.rw.pipe.read(b.ctx, p)
	if err == io.EOF {
		b.rw.mu.Lock()
		for k, v := range b.rw.final {
			b.rw.trailer[k] = v
		}
		b.rw.mu.Unlock()
	}
	return n, err
}

// Close stops the handler (if it is still writing) and waits for it.
func (b *memBody) Close() error {
	b.once.Do(func() {
		b.rw.pipe.closeRead()
		b.cancel()
		<-b.done
	})
	return nil
}

// memPipe is a bounded in-memory pipe whose waits are channel operations, so
// that goroutines blocked on it are durably blocked inside a synctest bubble.
type memPipe struct {
	// wctx ends a writer's wait for space (the handler's context).
	wctx    context.Context
	mu      sync.Mutex
	buf     bytes.Buffer
	werr    error // set when the writer is done: io.EOF or a failure
	rclosed bool
	// readable and writable are poked (never closed) when data, space or a
	// close happens; waiters re-check the state after each poke.
	readable chan struct{}
	writable chan struct{}
}

func newMemPipe(wctx context.Context) *memPipe {
	return &memPipe{wctx: wctx, readable: make(chan struct{}, 1), writable: make(chan struct{}, 1)}
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (p *memPipe) write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		p.mu.Lock()
		if p.rclosed || p.werr != nil {
			p.mu.Unlock()
			return n, io.ErrClosedPipe
		}
		if space := memPipeLimit - p.buf.Len(); space > 0 {
			k := min(space, len(b))
			p.buf.Write(b[:k])
			b = b[k:]
			n += k
			p.mu.Unlock()
			poke(p.readable)
			continue
		}
		p.mu.Unlock()
		select {
		case <-p.writable:
		case <-p.wctx.Done():
			return n, p.wctx.Err()
		}
	}
	return n, nil
}

func (p *memPipe) read(ctx context.Context, b []byte) (int, error) {
	for {
		// Like net/http, a cancelled request's body fails to read, even if
		// the handler has already finished writing it.
		if ctx.Err() != nil {
			return 0, context.Cause(ctx)
		}
		p.mu.Lock()
		if p.rclosed {
			p.mu.Unlock()
			return 0, errors.New("http: read on closed response body")
		}
		if p.buf.Len() > 0 {
			n, _ := p.buf.Read(b)
			p.mu.Unlock()
			poke(p.writable)
			return n, nil
		}
		if p.werr != nil {
			err := p.werr
			p.mu.Unlock()
			return 0, err
		}
		p.mu.Unlock()
		select {
		case <-p.readable:
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
	}
}

func (p *memPipe) closeWrite(err error) {
	p.mu.Lock()
	if p.werr == nil {
		p.werr = err
	}
	p.mu.Unlock()
	poke(p.readable)
}

func (p *memPipe) closeRead() {
	p.mu.Lock()
	p.rclosed = true
	p.buf.Reset()
	p.mu.Unlock()
	poke(p.writable)
}
