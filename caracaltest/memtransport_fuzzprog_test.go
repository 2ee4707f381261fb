package caracaltest

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// memProg is a handler's behaviour and a client's, decoded from fuzz input:
// the same program runs over loopback and in memory, and the client must
// see the same of both.
type memProg struct {
	method  string
	reqBody int // bytes of request body (POST only)
	client  int // memClient*
	part    int // bytes the client reads before it closes or cancels
	ops     []memOp
}

// How the client reads the response body.
const (
	memClientReadAll = iota
	memClientPartThenClose
	memClientPartThenCancel
)

type memOp struct {
	kind byte
	a, b byte
}

// Handler actions.
const (
	opSetHeader      = iota // X-H<a%3>: v<b%4>
	opWriteHeader           // status memStatuses[a]
	opWrite                 // memSizes[a] bytes in b%3+1 pieces; b&4: sniffable
	opFlush                 // Flush
	opSetTrailer            // X-T<a%3>: t<b%4>, a plain header set
	opDeclareTrailer        // Trailer: X-T<a%3>
	opPrefixTrailer         // Trailer:X-T<a%3>: p<b%4>
	opLength                // a%5: Content-Length of the writes' total, one less, one more, 0, half
	opPanic                 // panic(http.ErrAbortHandler)
	opReadBody              // a%2: read 2 bytes, or all; reports what it read
	opReport                // writes the last Write's n and error
	opContentType           // a%3: set text/plain, set to nothing, delete
	opLocation              // Location: the redirect target
	opEncoding              // a%4: Transfer-Encoding chunked or identity, Content-Encoding br, Content-Length x
	opCount
)

var (
	memStatuses = []int{100, 103, 200, 201, 204, 206, 301, 302, 303, 304, 307, 308, 404, 500}
	memSizes    = []int{0, 1, 3, 5, 100, 2047, 2048, 2049, 4096, 70000, memPipeLimit + 10}
	memMethods  = []string{http.MethodGet, http.MethodHead, http.MethodPost}
	memReqSizes = []int{0, 12, 3000}
)

// decodeMemProg reads a program; missing bytes read as zero.
func decodeMemProg(data []byte) memProg {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	p := memProg{
		method:  memMethods[int(next())%len(memMethods)],
		reqBody: memReqSizes[int(next())%len(memReqSizes)],
		client:  int(next()) % 3,
		part:    int(next()) * 37,
	}
	for len(data) > 0 && len(p.ops) < 10 {
		p.ops = append(p.ops, memOp{kind: next() % opCount, a: next(), b: next()})
	}
	return p
}

// total is how many body bytes the program's writes amount to.
func (p memProg) total() int {
	n := 0
	for _, op := range p.ops {
		if op.kind == opWrite {
			n += memSizes[int(op.a)%len(memSizes)]
		}
	}
	return n
}

// invalidLength says the program may set an invalid Content-Length.
func (p memProg) invalidLength() bool {
	return slices.ContainsFunc(p.ops, func(op memOp) bool { return op.kind == opEncoding && op.a%4 == 3 })
}

// memBytes is n bytes of body, starting with markup if sniffable.
func memBytes(n int, sniffable bool) []byte {
	b := []byte(strings.Repeat("abcdefghij", n/10+1)[:n])
	if sniffable {
		copy(b, "<html>")
	}
	return b
}

// serve runs the program as a handler; redirect is the target of
// opLocation, which answers with what reached it.
func (p memProg) serve(w http.ResponseWriter, r *http.Request, redirect string) {
	if strings.HasSuffix(r.URL.Path, "/r") {
		b, err := io.ReadAll(r.Body)
		_, _ = fmt.Fprintf(w, "redirected %s %d %v", r.Method, len(b), err)
		return
	}
	var last string
	read := 0
	// sent says the header went out (a flush, or more than the writer
	// buffers): net/http's server then discards the request body, and
	// reading it fails (documented).
	sent, buffered := false, 0
	for _, op := range p.ops {
		h := w.Header()
		switch op.kind {
		case opSetHeader:
			h.Set(fmt.Sprintf("X-H%d", op.a%3), fmt.Sprintf("v%d", op.b%4))
		case opWriteHeader:
			w.WriteHeader(memStatuses[int(op.a)%len(memStatuses)])
		case opWrite:
			b := memBytes(memSizes[int(op.a)%len(memSizes)], op.b&4 != 0)
			k := int(op.b%3) + 1
			n, written := 0, 0
			var err error
			for i := range k {
				end := len(b) * (i + 1) / k
				n, err = w.Write(b[written:end])
				written = end
				if err == nil {
					buffered += n
				}
			}
			last = fmt.Sprintf("[%d %v]", n, err)
		case opFlush:
			w.(http.Flusher).Flush()
			sent = true
		case opSetTrailer:
			h.Set(fmt.Sprintf("X-T%d", op.a%3), fmt.Sprintf("t%d", op.b%4))
		case opDeclareTrailer:
			h.Add("Trailer", fmt.Sprintf("X-T%d", op.a%3))
		case opPrefixTrailer:
			h.Set(fmt.Sprintf("%sX-T%d", http.TrailerPrefix, op.a%3), fmt.Sprintf("p%d", op.b%4))
		case opLength:
			total := p.total()
			switch op.a % 5 {
			case 0:
				h.Set("Content-Length", strconv.Itoa(total))
			case 1:
				h.Set("Content-Length", strconv.Itoa(max(total-1, 0)))
			case 2:
				h.Set("Content-Length", strconv.Itoa(total+1))
			case 3:
				h.Set("Content-Length", "0")
			case 4:
				h.Set("Content-Length", strconv.Itoa(total/2))
			}
		case opPanic:
			if r.Method == http.MethodPost {
				// Over loopback, a connection closed with the request
				// body unread fails the round trip or not, by timing.
				_, _ = io.Copy(io.Discard, r.Body)
			}
			if sent || buffered > memBufferSize {
				// Documented: net/http's server loses what it buffered
				// since the header went out; the in-memory writer has
				// sent it.
				w.(http.Flusher).Flush()
			}
			panic(http.ErrAbortHandler)
		case opReadBody:
			if sent || buffered > memBufferSize {
				continue
			}
			var n int
			var err error
			if op.a%2 == 0 {
				n, err = io.ReadFull(r.Body, make([]byte, 2))
			} else {
				var b []byte
				b, err = io.ReadAll(r.Body)
				n = len(b)
			}
			read += n
			last = fmt.Sprintf("[read %d %d %v]", n, read, err)
		case opReport:
			n, err := io.WriteString(w, last)
			if err == nil {
				buffered += n
			}
			last = fmt.Sprintf("[%d %v]", n, err)
		case opContentType:
			switch op.a % 3 {
			case 0:
				h.Set("Content-Type", "text/plain")
			case 1:
				h["Content-Type"] = nil
			case 2:
				h.Del("Content-Type")
			}
		case opLocation:
			h.Set("Location", redirect)
		case opEncoding:
			switch op.a % 4 {
			case 0:
				h.Set("Transfer-Encoding", "chunked")
			case 1:
				h.Set("Transfer-Encoding", "identity")
			case 2:
				h.Set("Content-Encoding", "br")
			case 3:
				h.Set("Content-Length", "x")
			}
		}
	}
}
