package caracal_test

import (
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// h2Gateway is a cleartext HTTP/2 server that resets the first request
// stream it sees with code and answers every later one with a bodiless 200.
// It counts the HEADERS frames (requests) it receives.
type h2Gateway struct {
	ln   net.Listener
	code uint32
	wg   sync.WaitGroup

	mu       sync.Mutex
	requests int
	conns    []net.Conn
}

func startH2Gateway(t *testing.T, code uint32) *h2Gateway {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	g := &h2Gateway{ln: ln, code: code}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			g.mu.Lock()
			g.conns = append(g.conns, conn)
			g.mu.Unlock()
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				g.serve(conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		g.mu.Lock()
		for _, c := range g.conns {
			c.Close()
		}
		g.mu.Unlock()
		g.wg.Wait()
	})
	return g
}

func (g *h2Gateway) URL() string { return "http://" + g.ln.Addr().String() }

func (g *h2Gateway) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.requests
}

func writeH2Frame(w io.Writer, typ, flags byte, stream uint32, payload []byte) error {
	var hdr [9]byte
	hdr[0], hdr[1], hdr[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
	hdr[3], hdr[4] = typ, flags
	binary.BigEndian.PutUint32(hdr[5:], stream)
	_, err := w.Write(append(hdr[:], payload...))
	return err
}

func (g *h2Gateway) serve(conn net.Conn) {
	const (
		frameHeaders   = 0x1
		frameRSTStream = 0x3
		frameSettings  = 0x4
		flagAck        = 0x1
		flagEndStream  = 0x1
		flagEndHeaders = 0x4
	)
	preface := make([]byte, len("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	if _, err := io.ReadFull(conn, preface); err != nil {
		return
	}
	if writeH2Frame(conn, frameSettings, 0, 0, nil) != nil {
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
		stream := binary.BigEndian.Uint32(hdr[5:]) & 0x7fffffff
		var err error
		switch hdr[3] {
		case frameSettings:
			if hdr[4]&flagAck == 0 {
				err = writeH2Frame(conn, frameSettings, flagAck, 0, nil)
			}
		case frameHeaders:
			g.mu.Lock()
			g.requests++
			first := g.requests == 1
			g.mu.Unlock()
			if first {
				var code [4]byte
				binary.BigEndian.PutUint32(code[:], g.code)
				err = writeH2Frame(conn, frameRSTStream, 0, stream, code[:])
			} else {
				// 0x88: ":status: 200" from the HPACK static table.
				err = writeH2Frame(conn, frameHeaders, flagEndHeaders|flagEndStream, stream, []byte{0x88})
			}
		}
		if err != nil {
			return
		}
	}
}

// The HTTP/2 transport of net/http re-sends a request whose stream the
// server reset with REFUSED_STREAM or PROTOCOL_ERROR, or that a GOAWAY left
// unprocessed, whenever the request has no body, whatever its method. A
// governed request must never be re-sent that way: PROTOCOL_ERROR does not
// mean the Gateway left the mandate unused.
func TestGovernedRequestIsNeverResentByHTTP2(t *testing.T) {
	const (
		errCodeProtocol      = 0x1
		errCodeRefusedStream = 0x7
	)
	st := caracaltest.Start(t)
	for _, tc := range []struct {
		name   string
		method string
		code   uint32
	}{
		{name: "GET reset with PROTOCOL_ERROR", method: http.MethodGet, code: errCodeProtocol},
		{name: "bodiless POST reset with PROTOCOL_ERROR", method: http.MethodPost, code: errCodeProtocol},
		{name: "bodiless DELETE reset with PROTOCOL_ERROR", method: http.MethodDelete, code: errCodeProtocol},
		{name: "bodiless PUT refused", method: http.MethodPut, code: errCodeRefusedStream},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := startH2Gateway(t, tc.code)
			c, agent := behindGateway(t, st, gw.URL(), "tickets:read")

			var protocols http.Protocols
			protocols.SetUnencryptedHTTP2(true)
			base := &http.Transport{Protocols: &protocols}
			defer base.CloseIdleConnections()
			hc := &http.Client{Transport: c.Transport(base, caracal.WithScopes("tickets:read"))}

			req, err := http.NewRequestWithContext(agent.Context(), tc.method, st.UpstreamURL("resource://tickets")+"/tickets/1", nil)
			require.NoError(t, err)
			resp, err := hc.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			require.Error(t, err, "the reset request fails; it is not re-sent with the same mandate")
			require.Equal(t, 1, gw.count(), "the governed request reached the Gateway once")
		})
	}
}
