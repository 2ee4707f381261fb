package caracaltest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// memProgSeeds are programs for FuzzMemTransportMatchesLoopback, as the
// bytes decodeMemProg reads: method, request body, client, part, then
// three bytes an op.
var memProgSeeds = [][]byte{
	{0, 0, 0, 0, opWrite, 3, 0},
	{0, 0, 0, 0, opWrite, 9, 2, opFlush, 0, 0, opReport, 0, 0},
	{1, 0, 0, 0, opLength, 0, 0, opWrite, 4, 1},
	{2, 1, 0, 0, opReadBody, 0, 0, opReport, 0, 0, opReadBody, 1, 0, opReport, 0, 0},
	{2, 2, 0, 0, opReadBody, 1, 0, opWriteHeader, 1, 0, opReport, 0, 0},
	{0, 0, 0, 0, opDeclareTrailer, 0, 0, opWrite, 2, 6, opSetTrailer, 0, 1, opPrefixTrailer, 1, 2},
	{0, 0, 0, 0, opSetTrailer, 0, 0, opDeclareTrailer, 0, 0, opDeclareTrailer, 0, 0, opPrefixTrailer, 0, 1},
	{0, 0, 0, 0, opPrefixTrailer, 2, 0, opWrite, 7, 0, opFlush, 0, 0, opSetTrailer, 2, 3},
	{0, 0, 0, 0, opLength, 1, 0, opWrite, 5, 2, opReport, 0, 0},
	{0, 0, 0, 0, opLength, 2, 0, opWrite, 6, 1, opFlush, 0, 0},
	{0, 0, 0, 0, opLength, 3, 0, opWrite, 2, 0},
	{0, 0, 0, 0, opEncoding, 3, 0},
	{2, 1, 0, 0, opEncoding, 3, 0, opWrite, 3, 0},
	{0, 0, 0, 0, opEncoding, 1, 0, opWrite, 4, 4},
	{0, 0, 0, 0, opEncoding, 0, 0, opLength, 0, 0, opWrite, 4, 0},
	{0, 0, 0, 0, opEncoding, 0, 0, opLength, 3, 0, opFlush, 0, 0, opWrite, 4, 0},
	{0, 0, 0, 0, opEncoding, 1, 0, opWrite, 3, 0, opFlush, 0, 0, opPanic, 0, 0},
	{0, 0, 0, 0, opLength, 4, 0, opWrite, 3, 2, opFlush, 0, 0, opPanic, 0, 0},
	{0, 0, 0, 0, opWriteHeader, 4, 0, opWrite, 1, 0, opReport, 0, 0},
	{0, 0, 0, 0, opWriteHeader, 9, 0, opContentType, 0, 0},
	{2, 1, 0, 0, opLocation, 0, 0, opWriteHeader, 10, 0},
	{2, 1, 0, 0, opLocation, 0, 0, opWriteHeader, 8, 0},
	{0, 0, 0, 0, opSetHeader, 0, 1, opWriteHeader, 1, 0, opSetHeader, 1, 2, opWrite, 2, 0},
	{0, 0, 0, 0, opWrite, 4, 0, opFlush, 0, 0, opPanic, 0, 0},
	{2, 1, 0, 0, opWrite, 4, 0, opPanic, 0, 0},
	{0, 0, 1, 3, opWrite, 10, 2},
	{0, 0, 2, 3, opWrite, 9, 1},
	{0, 0, 2, 0, opWrite, 2, 0},
	{1, 0, 0, 0, opContentType, 1, 0, opWrite, 3, 4, opPanic, 0, 0},
}

// What the client sees through the in-memory transport is what it sees of
// the same handler over loopback: status, header (but Date), length,
// transfer encoding, the body and how it ends, and the trailers, whatever
// the handler does and however the client reads.
func FuzzMemTransportMatchesLoopback(f *testing.F) {
	for _, s := range memProgSeeds {
		f.Add(s)
	}
	st := Start(f)
	var progs sync.Map // id -> memProg
	var ids atomic.Int64
	require.NoError(f, st.SetUpstream("resource://tickets", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/fz/"), "/")
		p, ok := progs.Load(id)
		if !ok {
			http.NotFound(w, r)
			return
		}
		p.(memProg).serve(w, r, "/fz/"+id+"/r")
	})))
	base := st.UpstreamURL("resource://tickets") + "/fz/"
	loopback := &http.Transport{}
	f.Cleanup(loopback.CloseIdleConnections)
	mem := st.HTTPClient()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := decodeMemProg(data)
		id := strconv.FormatInt(ids.Add(1), 10)
		progs.Store(id, p)
		defer progs.Delete(id)
		over := memRun(t, &http.Client{Transport: loopback}, base+id, p)
		// A fresh connection for each program: one that the server closed
		// after a complete response must not fail the next.
		loopback.CloseIdleConnections()
		in := memRun(t, mem, base+id, p)
		if over.seen == "round trip failed" && p.invalidLength() {
			// Documented: over loopback, an invalid Content-Length the
			// handler set reaches the client unless the body is
			// chunked, and the client fails to parse it.
			return
		}
		assert.Equal(t, over.seen, in.seen, "%+v", p)
		if p.client == memClientPartThenCancel && in.seen != "round trip failed" {
			// Over loopback, the read may still end cleanly, or cut.
			assert.ErrorIs(t, in.afterCancel, context.Canceled)
		}
	})
}

type memOutcome struct {
	seen        string
	afterCancel error // the error of a read after the client cancelled
}

// memRun runs p's client side against url with c.
func memRun(t *testing.T, c *http.Client, url string, p memProg) memOutcome {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var body io.Reader
	if p.method == http.MethodPost {
		body = strings.NewReader(strings.Repeat("q", p.reqBody))
	}
	req, err := http.NewRequestWithContext(ctx, p.method, url, body)
	require.NoError(t, err)
	resp, err := c.Do(req)
	if err != nil {
		// Documented: a drop before the response wraps io.EOF over
		// loopback, io.ErrUnexpectedEOF in memory.
		return memOutcome{seen: "round trip failed"}
	}
	defer resp.Body.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "%d length=%d te=%v\n", resp.StatusCode, resp.ContentLength, resp.TransferEncoding)
	for _, k := range slices.Sorted(maps.Keys(resp.Header)) {
		if k != "Date" {
			fmt.Fprintf(&b, "%s: %q\n", k, resp.Header[k])
		}
	}
	var out memOutcome
	switch p.client {
	case memClientReadAll:
		got, err := io.ReadAll(resp.Body)
		fmt.Fprintf(&b, "body %d %q, %s, trailer %v", len(got), memHead(got), errClass(err), resp.Trailer)
	default:
		got := make([]byte, p.part)
		n, err := io.ReadFull(resp.Body, got)
		fmt.Fprintf(&b, "part %d %q, %s", n, memHead(got[:n]), errClass(err))
		if p.client == memClientPartThenCancel {
			cancel()
			_, out.afterCancel = io.ReadAll(resp.Body)
		} else {
			require.NoError(t, resp.Body.Close())
			// Documented: net/http's empty bodies are http.NoBody, which
			// reads EOF after Close.
			if resp.ContentLength != 0 && p.method != http.MethodHead && bodyAllowedForStatus(resp.StatusCode) {
				_, err = resp.Body.Read(make([]byte, 1))
				fmt.Fprintf(&b, ", after close %v", err)
			}
		}
	}
	out.seen = b.String()
	return out
}

// memHead is b, shortened to its first and last bytes if long.
func memHead(b []byte) string {
	if len(b) <= 80 {
		return string(b)
	}
	return string(b[:40]) + "..." + string(b[len(b)-40:])
}

func errClass(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected EOF"
	case errors.Is(err, io.EOF):
		return "EOF"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "other"
}
