package caracal

import (
	"fmt"
	"io"
	"net/http"
)

// trailerRevoked is the trailer the Gateway sets when it cuts a streamed
// response because the mandate's session, delegation or authority record
// was revoked while it streamed (PROTOCOL §8.4); every Gateway answer
// announces it (§8.6).
const trailerRevoked = "X-Caracal-Revoked"

// watchRevoked makes the body of a Gateway response that announces the
// revocation trailer end in an error wrapping io.ErrUnexpectedEOF, instead
// of io.EOF, when the Gateway cut it: otherwise the part read looks like
// the whole answer unless the caller checks resp.Trailer. When the cut is
// seen, c drops the mandates it pooled for session, revoked too.
func watchRevoked(resp *http.Response, resource string, c *Client, session string) {
	if _, announced := resp.Trailer[trailerRevoked]; !announced || resp.Body == nil || resp.Body == http.NoBody {
		return
	}
	resp.Body = &revokedBody{ReadCloser: resp.Body, resp: resp, resource: resource, c: c, session: session}
}

// revokedBody is a Gateway response body that reports a revocation cut.
type revokedBody struct {
	io.ReadCloser
	resp     *http.Response
	resource string
	c        *Client
	session  string
	dropped  bool // c's pools for session were dropped
}

func (b *revokedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	// The trailer is filled in once the body has been read to its end.
	if err == io.EOF && b.resp.Trailer.Get(trailerRevoked) == "true" {
		if !b.dropped {
			b.dropped = true
			b.c.dropSessionPools(b.session)
		}
		err = fmt.Errorf("caracal: the Gateway cut the response from %s: the session or delegation of its mandate was revoked while it streamed: %w",
			b.resource, io.ErrUnexpectedEOF)
	}
	return n, err
}
