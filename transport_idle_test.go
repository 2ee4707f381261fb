package caracal_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// http.Client.CloseIdleConnections reaches the base transport through the
// SDK's, whose connections to non-bound hosts and to the Gateway it holds.
func TestTransportClosesIdleConnections(t *testing.T) {
	g := startGoverned(t)
	closed := make(chan struct{}, 1)
	other := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	other.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed <- struct{}{}
		}
	}
	other.Start()
	defer other.Close()

	base := &trackedTransport{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	hc := &http.Client{Transport: g.c.Transport(base, caracal.WithScopes("tickets:read"))}
	for _, u := range []string{other.URL + "/x", g.url(tickets, "/tickets/1")} {
		resp, err := get(t, hc, g.reader.Context(), u)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	hc.CloseIdleConnections()
	assert.Equal(t, int32(1), base.closes.Load())
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the idle connection to the non-bound host was not closed")
	}
}

type trackedTransport struct {
	*http.Transport
	closes atomic.Int32
}

func (t *trackedTransport) CloseIdleConnections() {
	t.closes.Add(1)
	t.Transport.CloseIdleConnections()
}
