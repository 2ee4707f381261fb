package caracal_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// trailerBody fills in its request's trailer when it is read to the end, as
// http.Request documents for trailers whose values are known only then.
type trailerBody struct {
	r   io.Reader
	req *http.Request
}

func (b *trailerBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.req.Trailer.Set("X-Checksum", "c0ffee")
	}
	return n, err
}

func (b *trailerBody) Close() error { return nil }

// A request trailer whose value the caller sets once the body is read
// reaches the Gateway: the transport's copy of the request sends the
// caller's trailer, not a snapshot taken before the body was read.
func TestGovernedRequestSendsTrailersSetAfterTheBody(t *testing.T) {
	got := make(chan http.Header, 1)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got <- r.Trailer.Clone()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer gw.Close()

	st := caracaltest.Start(t)
	c, agent := behindGateway(t, st, gw.URL, "tickets:write")

	base := &http.Transport{}
	defer base.CloseIdleConnections()
	hc := &http.Client{Transport: c.Transport(base, caracal.WithScopes("tickets:write"))}
	req, err := http.NewRequestWithContext(agent.Context(), http.MethodPost, st.UpstreamURL("resource://tickets")+"/tickets", nil)
	require.NoError(t, err)
	req.Body = &trailerBody{r: strings.NewReader(`{"title":"t"}`), req: req}
	req.ContentLength = -1
	req.Trailer = http.Header{"X-Checksum": nil}

	resp, err := hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Equal(t, "c0ffee", (<-got).Get("X-Checksum"))
}
