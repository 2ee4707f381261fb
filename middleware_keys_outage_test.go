package caracal_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// While the STS is down but the aged key set still verifies, only tokens
// under a key the set lacks (a rotation during the outage) are refused: the
// outage's log line says so rather than that every bearer is refused, and
// it is logged again once every bearer is, when the aged keys run out.
func TestMiddlewareKeyOutageLogSaysWhatIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newKeyOutage(t)
		require.Equal(t, http.StatusNoContent, k.call(t))

		k.st.Inject(caracaltest.RouteJWKS, caracaltest.Fault{Status: http.StatusServiceUnavailable})
		time.Sleep(6 * time.Minute) // the key set ages; the STS cannot be reached
		require.Equal(t, http.StatusNoContent, k.call(t), "the aged key still verifies")
		k.st.RotateSigningKey()
		require.Equal(t, http.StatusUnauthorized, k.call(t), "a token under the new key is refused")
		lines := k.warnings()
		require.Len(t, lines, 1)
		assert.NotContains(t, lines[0], "every bearer is refused", "tokens under the aged keys are still accepted")

		time.Sleep(2 * time.Hour) // the aged keys run out
		require.Equal(t, http.StatusUnauthorized, k.call(t))
		require.Equal(t, http.StatusUnauthorized, k.call(t))
		lines = k.warnings()
		require.Len(t, lines, 2, "every bearer refused now: logged once more")
		assert.Contains(t, lines[1], "every bearer is refused")
		k.close(t)
	})
}

// A signing-key outage that ended is over even when no token verified
// between it and the next one (every token that came was refused for
// another reason, here a scope it lacks): the next outage is logged too.
func TestMiddlewareKeyOutageLoggedAgainAfterRefusedTokens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newKeyOutage(t, caracal.RequireScopes("tickets:write"))

		k.st.Inject(caracaltest.RouteJWKS, caracaltest.Fault{Status: http.StatusServiceUnavailable})
		require.Equal(t, http.StatusUnauthorized, k.call(t))
		require.Len(t, k.warnings(), 1)

		k.st.ClearFaults()
		time.Sleep(time.Minute) // past the refetch pause after a failed fetch
		require.Equal(t, http.StatusForbidden, k.call(t), "the keys are back; the token lacks the scope")
		require.Len(t, k.warnings(), 1)

		k.st.Inject(caracaltest.RouteJWKS, caracaltest.Fault{Status: http.StatusServiceUnavailable})
		time.Sleep(2 * time.Hour) // the fetched keys run out
		require.Equal(t, http.StatusUnauthorized, k.call(t))
		require.Len(t, k.warnings(), 2, "a second outage is logged")
		require.Zero(t, k.got.calls.Load())
		k.close(t)
	})
}

// keyOutage is a resource server behind the verifying middleware, which
// logs to a recorder, on an in-memory stack, and an agent client that calls
// it through the Gateway. It is made inside a synctest bubble.
type keyOutage struct {
	st     *caracaltest.Stack
	c, rc  *caracal.Client // the agent's client, the resource server's
	hc     *http.Client
	got    *seen
	logged *logRecorder
}

func newKeyOutage(t *testing.T, opts ...caracal.VerifyOption) *keyOutage {
	st := caracaltest.Start(t, caracaltest.InMemory())
	k := &keyOutage{st: st, got: new(seen), logged: &logRecorder{}}
	k.c, _ = newClient(t, st)
	k.rc, _ = newClient(t, st, caracal.WithLogger(slog.New(k.logged)))
	mw, err := k.rc.Middleware(caracal.VerifyTokens("resource://tickets", opts...))
	require.NoError(t, err)
	require.NoError(t, st.SetUpstream("resource://tickets", mw(k.got.handler())))
	k.hc = k.c.HTTPClient(caracal.WithScopes("tickets:read"))
	return k
}

// call sends one request from a new narrowed reader and returns the
// resource server's status.
func (k *keyOutage) call(t *testing.T) int {
	_, reader := narrowReader(t, k.c, caracal.Constraints{}, "reader")
	req, err := http.NewRequestWithContext(reader.Context(), http.MethodGet, k.st.UpstreamURL("resource://tickets")+"/tickets/1", nil)
	require.NoError(t, err)
	resp, err := k.hc.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	return resp.StatusCode
}

// warnings returns the messages of the warnings about the signing keys.
func (k *keyOutage) warnings() []string {
	var out []string
	for _, r := range k.logged.all() {
		if r.Level == slog.LevelWarn && strings.Contains(r.Message, "signing keys") {
			out = append(out, r.Message)
		}
	}
	return out
}

// close closes both clients, before the bubble ends.
func (k *keyOutage) close(t *testing.T) {
	require.NoError(t, k.rc.Close(t.Context()))
	require.NoError(t, k.c.Close(t.Context()))
}
