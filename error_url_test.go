package caracal_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// withUser puts user (a token, as in https://TOKEN@host) into a service URL.
func withUser(raw, user string) string {
	return strings.Replace(raw, "://", "://"+user+"@", 1)
}

// A service URL's user part is often a token: a request that gets no answer
// fails with ErrUnavailable, and neither its error nor the logs show it.
func TestNoAnswerErrorHidesURLUser(t *testing.T) {
	const stsUser, coordUser = "stsTok3nUser", "coordTok3nUser"
	for _, tc := range []struct {
		name, route string
	}{
		{"sts", caracaltest.RouteToken},
		{"coordinator", caracaltest.RouteStart},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := caracaltest.Start(t)
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			c, _ := newClient(t, st, caracal.WithLogger(log),
				caracal.WithSTSURL(withUser(st.STSURL(), stsUser)),
				caracal.WithCoordinatorURL(withUser(st.CoordinatorURL(), coordUser)))
			st.Inject(tc.route, caracaltest.Fault{Drop: true})
			_, err := c.Spawn(t.Context())
			require.Error(t, err)
			assert.ErrorIs(t, err, caracal.ErrUnavailable)
			// Close waits for the background retire of the start given up.
			st.ClearFaults()
			closeErr := fmt.Sprint(c.Close(context.Background()))
			for _, out := range []string{err.Error(), closeErr, logs.String()} {
				assert.NotContains(t, out, stsUser)
				assert.NotContains(t, out, coordUser)
			}
		})
	}
}

// The same for the Middleware's fetch of the signing keys from the STS: the
// one log line of the outage names the URL with its user part masked.
func TestKeyFetchFailureLogHidesURLUser(t *testing.T) {
	const user = "jwksTok3nUser"
	st, c := newStack(t)
	logs := keyOutageLog(t, st, c, caracaltest.Fault{Drop: true}, []caracal.Option{caracal.WithSTSURL(withUser(st.STSURL(), user))})
	assert.Contains(t, logs, "cannot fetch the STS signing keys")
	assert.NotContains(t, logs, user)
}

// Most Coordinator refusals ({"error":"<code>"}) carry no request id, and
// the Coordinator sends none as a header (PROTOCOL §4.1, §11): the id the
// client sent, which the Coordinator adopts, is the one the error carries,
// for a plain refusal as for a 5xx that outlasted the retries.
func TestCoordinatorErrorCarriesTheRequestID(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fault    caracaltest.Fault
		sentinel error
		attempts int
	}{
		{"refusal", caracaltest.Fault{Status: 404}, caracal.ErrNotFound, 1},
		{"5xx after retries", caracaltest.Fault{Status: 503, Code: "service_unavailable"}, caracal.ErrUnavailable, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, c := newStack(t)
			st.Inject(caracaltest.RouteStart, tc.fault)
			_, err := c.Spawn(t.Context())
			var e *caracal.Error
			require.ErrorAs(t, err, &e)
			assert.ErrorIs(t, err, tc.sentinel)
			assert.Equal(t, tc.fault.Status, e.StatusCode)
			assert.NotEmpty(t, e.Code)
			// The last attempt of the Spawn; after a 5xx, a start sent in
			// the background to find a session it may have left follows.
			starts := startsOf(st)
			require.GreaterOrEqual(t, len(starts), tc.attempts)
			sent := starts[tc.attempts-1].Header.Get("X-Request-Id")
			assert.NotEmpty(t, sent, "the start carries a request id")
			assert.Equal(t, sent, e.RequestID)
			assert.Contains(t, err.Error(), "(request id "+sent+")")
		})
	}
}

// A key given in the query of VerifyJWKSURL (a key proxy's api key, say)
// is masked in the outage's log line like a token in any configured URL,
// whether the fetch got no answer or a refusal.
func TestKeyFetchFailureLogHidesURLQuery(t *testing.T) {
	const key = "k3yQuerySecret"
	for _, fault := range []caracaltest.Fault{{Drop: true}, {Status: http.StatusServiceUnavailable}} {
		st, c := newStack(t)
		logs := keyOutageLog(t, st, c, fault, nil,
			caracal.VerifyJWKSURL(st.STSURL()+"/.well-known/jwks.json?zone_id="+st.Zone()+"&api_key="+key))
		assert.Contains(t, logs, "cannot fetch the STS signing keys")
		assert.Contains(t, logs, "api_key=xxxxx")
		assert.NotContains(t, logs, key)
	}
}
