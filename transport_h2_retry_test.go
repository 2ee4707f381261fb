package caracal_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
	"github.com/caracal-go/caracal/internal/h2test"
)

// The HTTP/2 transport of net/http re-sends a request whose stream the
// server reset with REFUSED_STREAM or PROTOCOL_ERROR, or that a GOAWAY left
// unprocessed, whenever the request has no body, whatever its method. A
// governed request must never be re-sent that way: PROTOCOL_ERROR does not
// mean the Gateway left the mandate unused.
func TestGovernedRequestIsNeverResentByHTTP2(t *testing.T) {
	st := caracaltest.Start(t)
	for _, tc := range []struct {
		name   string
		method string
		code   uint32
	}{
		{name: "GET reset with PROTOCOL_ERROR", method: http.MethodGet, code: h2test.CodeProtocol},
		{name: "bodiless POST reset with PROTOCOL_ERROR", method: http.MethodPost, code: h2test.CodeProtocol},
		{name: "bodiless DELETE reset with PROTOCOL_ERROR", method: http.MethodDelete, code: h2test.CodeProtocol},
		{name: "bodiless PUT refused", method: http.MethodPut, code: h2test.CodeRefusedStream},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The first request's stream is reset; any later one is answered 200.
			gw := h2test.Start(t, h2test.Action{Reset: tc.code}, h2test.Action{})
			c, agent := behindGateway(t, st, gw.URL(), "tickets:read")
			hc := &http.Client{Transport: c.Transport(h2test.Client(t).Transport, caracal.WithScopes("tickets:read"))}

			req, err := http.NewRequestWithContext(agent.Context(), tc.method, st.UpstreamURL("resource://tickets")+"/tickets/1", nil)
			require.NoError(t, err)
			resp, err := hc.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			require.Error(t, err, "the reset request fails; it is not re-sent with the same mandate")
			require.Equal(t, 1, gw.Requests(), "the governed request reached the Gateway once")
		})
	}
}
