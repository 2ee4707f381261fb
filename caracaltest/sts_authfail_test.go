package caracaltest

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/wire"
)

// A client can fail authentication under any application id it invents.
// The STS counts failures per id in a one-minute window; once the windows
// are over, the counters of the invented ids must be gone, or a hostile
// client grows the stack without bound.
func TestAuthFailureCountersExpire(t *testing.T) {
	fc := NewFakeClock(exStart)
	st := Start(t, InMemory(), WithClock(fc))
	hc := st.HTTPClient()
	fail := func(app string) {
		t.Helper()
		form := url.Values{
			"grant_type":     {wire.GrantTypeTokenExchange},
			"zone_id":        {st.Zone()},
			"application_id": {app},
			"client_secret":  {"wrong"},
			"scope":          {wire.ScopeLifecycle},
			"resource":       {"resource://tickets"},
		}
		resp, err := hc.Post(st.STSURL()+"/oauth/2/token", formType, strings.NewReader(form.Encode()))
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
	const invented = 1000
	for i := range invented {
		fail(fmt.Sprintf("app-invented-%d", i))
	}
	counters := func() int {
		st.w.mu.Lock()
		defer st.w.mu.Unlock()
		return len(st.w.authFails)
	}
	require.Equal(t, invented, counters())

	// Past every window and block, a new failure starts the only window
	// still open.
	fc.Advance(2 * time.Minute)
	fail("app-invented-late")
	require.LessOrEqual(t, counters(), 1)
}
