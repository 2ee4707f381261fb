package caracal_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// switchingServer answers every request with 101 Switching Protocols and
// then says nothing more until the test ends: net/http hands such an
// answer's connection to the caller as its body, out of reach of any
// request deadline.
func switchingServer(t *testing.T) string {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: other\r\n\r\n")
		_ = buf.Flush()
		<-release
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	return srv.URL
}

// returns runs f and fails the test if it does not return within a bound
// far above what an answered call takes.
func returns(t *testing.T, f func() error) error {
	t.Helper()
	var err error
	done := make(chan struct{})
	go func() { err = f(); close(done) }()
	endsSoon(t, done, "the call did not return: the switched connection is read for ever")
	return err
}

// A service that answers 101 Switching Protocols gives no answer to a
// control-plane call: the call fails at once, whatever the STS, the
// Coordinator or the key source does with the connection afterwards.
func TestProtocolSwitchAnswerEndsTheCall(t *testing.T) {
	st := caracaltest.Start(t)
	sw := switchingServer(t)
	client := func(set func(*caracal.Config)) *caracal.Client {
		cfg := st.Config()
		set(&cfg)
		// No Timeout: the SDK's own per-call deadlines are what bound calls.
		c, err := caracal.NewFromConfig(cfg, caracal.WithHTTPClient(&http.Client{}))
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		return c
	}

	viaSTS := client(func(c *caracal.Config) { c.STSURL = sw })
	err := returns(t, func() error { _, err := viaSTS.Spawn(t.Context()); return err })
	assert.Error(t, err, "STS token exchange")
	err = returns(t, func() error { return viaSTS.WaitApproval(t.Context(), "ap-1") })
	assert.Error(t, err, "STS approval poll")

	viaCoord := client(func(c *caracal.Config) { c.CoordinatorURL = sw })
	err = returns(t, func() error { _, err := viaCoord.Spawn(t.Context()); return err })
	assert.Error(t, err, "Coordinator start")

	mw, err := viaSTS.Middleware(caracal.VerifyTokens(mwResource, caracal.VerifyJWKSURL(sw+"/.well-known/jwks.json")))
	require.NoError(t, err)
	tok := newMWSigner(t, "kid-1").sign(t, resourceClaims())
	var code int
	require.NoError(t, returns(t, func() error {
		code = serve(mw(http.NotFoundHandler()), http.Header{"Authorization": {"Bearer " + tok}}).Code
		return nil
	}), "JWKS fetch")
	assert.NotEqual(t, http.StatusNotFound, code, "no token verified without keys")
}
