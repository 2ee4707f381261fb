// Package h2test is a cleartext HTTP/2 server for tests that answers each
// request with a scripted action, including a stream reset no net/http
// handler can produce (PROTOCOL_ERROR after the request was read).
package h2test

import (
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
)

// HTTP/2 error codes for Action.Reset.
const (
	CodeProtocol      = 0x1
	CodeRefusedStream = 0x7
)

// Action is the answer to one request: a RST_STREAM with code Reset when it
// is not zero, else Status (200 if zero) with Body.
type Action struct {
	Reset  uint32
	Status int
	Body   string
}

// Server serves the actions in order, one per request once the request
// (headers and body) has arrived; the last action repeats.
type Server struct {
	ln      net.Listener
	actions []Action
	wg      sync.WaitGroup

	mu       sync.Mutex
	requests int
	conns    []net.Conn
	closed   bool // the test ended: a connection accepted now is closed at once
}

// Start starts a Server, stopped when the test ends.
func Start(tb testing.TB, actions ...Action) *Server {
	tb.Helper()
	if len(actions) == 0 {
		actions = []Action{{}}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{ln: ln, actions: actions}
	s.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				_ = conn.Close()
				return
			}
			s.conns = append(s.conns, conn)
			s.mu.Unlock()
			s.wg.Go(func() { s.serve(conn) })
		}
	})
	tb.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		s.closed = true
		for _, c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// URL is the server's base URL (http, spoken as HTTP/2 with prior knowledge).
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Requests is how many requests arrived.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Client returns an HTTP client that speaks cleartext HTTP/2 and closes its
// connections when the test ends.
func Client(tb testing.TB) *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

const (
	frameData      = 0x0
	frameHeaders   = 0x1
	frameRSTStream = 0x3
	frameSettings  = 0x4
	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
)

func writeFrame(w io.Writer, typ, flags byte, stream uint32, payload []byte) error {
	var hdr [9]byte
	hdr[0], hdr[1], hdr[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
	hdr[3], hdr[4] = typ, flags
	binary.BigEndian.PutUint32(hdr[5:], stream)
	_, err := w.Write(append(hdr[:], payload...))
	return err
}

func (s *Server) serve(conn net.Conn) {
	preface := make([]byte, len("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	if _, err := io.ReadFull(conn, preface); err != nil {
		return
	}
	if writeFrame(conn, frameSettings, 0, 0, nil) != nil {
		return
	}
	for {
		var hdr [9]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return
		}
		n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		if _, err := io.CopyN(io.Discard, conn, int64(n)); err != nil {
			return
		}
		typ, flags := hdr[3], hdr[4]
		stream := binary.BigEndian.Uint32(hdr[5:]) & 0x7fffffff
		var err error
		switch {
		case typ == frameSettings && flags&flagAck == 0:
			err = writeFrame(conn, frameSettings, flagAck, 0, nil)
		case (typ == frameHeaders || typ == frameData) && flags&flagEndStream != 0:
			err = s.answer(conn, stream)
		}
		if err != nil {
			return
		}
	}
}

// answer runs the next action on stream, whose request has fully arrived.
func (s *Server) answer(conn net.Conn, stream uint32) error {
	s.mu.Lock()
	a := s.actions[min(s.requests, len(s.actions)-1)]
	s.requests++
	s.mu.Unlock()
	if a.Reset != 0 {
		var code [4]byte
		binary.BigEndian.PutUint32(code[:], a.Reset)
		return writeFrame(conn, frameRSTStream, 0, stream, code[:])
	}
	status := a.Status
	if status == 0 {
		status = http.StatusOK
	}
	// :status as a literal without indexing, its name from the HPACK
	// static table (index 8), the value not Huffman-coded.
	code := strconv.Itoa(status)
	block := append([]byte{0x08, byte(len(code))}, code...)
	if a.Body == "" {
		return writeFrame(conn, frameHeaders, flagEndHeaders|flagEndStream, stream, block)
	}
	if err := writeFrame(conn, frameHeaders, flagEndHeaders, stream, block); err != nil {
		return err
	}
	return writeFrame(conn, frameData, flagEndStream, stream, []byte(a.Body))
}
