package stsclient

import (
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A caller waiting on a shared lifecycle exchange whose leader panicked
// exchanges again on its own: it never takes the unfinished exchange's
// empty token as a success.
func TestLifecycleFollowerOfAPanickedExchangeExchangesAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sts := &fakeSTS{}
		release := make(chan struct{})
		var calls atomic.Int64
		c := New(Config{BaseURL: "http://sts.invalid", ClientSecret: secret, Resources: []string{"r"},
			HTTPClient: &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
				if calls.Add(1) == 1 {
					<-release
					panic("transport bug")
				}
				return inProcess(sts).Transport.RoundTrip(r)
			})}})

		leader := make(chan any, 1)
		go func() {
			defer func() { leader <- recover() }()
			_, _ = c.Lifecycle(t.Context())
		}()
		synctest.Wait()
		type result struct {
			tok Token
			err error
		}
		follower := make(chan result, 1)
		go func() {
			tok, err := c.Lifecycle(t.Context())
			follower <- result{tok, err}
		}()
		synctest.Wait() // the follower waits on the leader's exchange
		close(release)
		assert.Equal(t, "transport bug", <-leader)
		r := <-follower
		require.NoError(t, r.err)
		assert.NotEmpty(t, r.tok.Value)
		assert.EqualValues(t, 2, calls.Load())
	})
}
