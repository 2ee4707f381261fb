package caracal_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// A service that received a baggage within the caps passes the agent on to
// the next one, by Headers or by a PropagateAlways transport. The Caracal
// members it adds (caracal.hop here), and the values it received unencoded
// and now encodes, must not push the baggage over the caps: the next
// service would ignore it as a whole and refuse the request.
func TestPropagatedBaggageStaysWithinCaps(t *testing.T) {
	c := mwClient(t, http.DefaultClient)
	defer c.Close(context.Background())
	mw, err := c.Middleware(caracal.TrustedPropagation())
	require.NoError(t, err)

	var next seen
	b := httptest.NewServer(mw(next.handler()))
	defer b.Close()

	forward := func(useTransport bool) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, b.URL+"/next", nil)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			hc := http.DefaultClient
			if useTransport {
				hc = c.HTTPClient(caracal.WithPropagation(caracal.PropagateAlways))
			}
			h, err := c.Headers(r.Context())
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			if useTransport {
				req.Header.Set("Authorization", h.Get("Authorization"))
			} else {
				req.Header = h
			}
			resp, err := hc.Do(req)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			resp.Body.Close()
			w.WriteHeader(resp.StatusCode)
		})
	}

	const session = "0198d0a2-7f55-7a2b-8c3d-4e5f60718293"
	many := make([]string, 63)
	for i := range many {
		many[i] = "k" + strconv.Itoa(i) + "=v"
	}
	for name, bag := range map[string]string{
		"64 members":           "caracal.agent_session=" + session + "," + strings.Join(many, ","),
		"values that grow":     "caracal.agent_session=" + session + ",a=1,plus=" + strings.Repeat("+", 3000),
		"non-ASCII that grows": "caracal.agent_session=" + session + ",name=" + strings.Repeat("ü", 1500),
	} {
		for _, useTransport := range []bool{false, true} {
			t.Run(name+"/transport="+strconv.FormatBool(useTransport), func(t *testing.T) {
				next.agent.Store(nil)
				a := httptest.NewServer(mw(forward(useTransport)))
				defer a.Close()
				req, err := http.NewRequest(http.MethodGet, a.URL, nil)
				require.NoError(t, err)
				req.Header.Set("Authorization", "Bearer tok")
				req.Header.Set("Baggage", bag)
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				resp.Body.Close()
				require.Equal(t, http.StatusNoContent, resp.StatusCode, "the next service accepts the propagated baggage")
				got := next.agent.Load()
				require.NotNil(t, got)
				assert.Equal(t, session, got.SessionID())
			})
		}
	}
}
