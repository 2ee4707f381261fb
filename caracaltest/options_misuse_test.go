package caracaltest_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/caracaltest"
)

// A negative lease, limit or approval TTL is refused: it used to be taken
// as "unset", so that WithLease(-time.Second) ran services on the default
// 120 s lease.
func TestNewRefusesNegativeSettings(t *testing.T) {
	for name, opt := range map[string]caracaltest.Option{
		"WithLease":         caracaltest.WithLease(-time.Second),
		"SessionsPerZone":   caracaltest.WithLimits(caracaltest.Limits{SessionsPerZone: -1}),
		"ChildrenPerParent": caracaltest.WithLimits(caracaltest.Limits{ChildrenPerParent: -1}),
		"MintPerMinute":     caracaltest.WithLimits(caracaltest.Limits{MintPerMinute: -1}),
		"AuthFailures":      caracaltest.WithLimits(caracaltest.Limits{AuthFailures: -1}),
		"WithApprovalTier":  caracaltest.WithApprovalTier(caracaltest.ApprovalTier{Tier: "high", Approver: "any", TTL: -time.Minute}),
	} {
		t.Run(name, func(t *testing.T) {
			s, err := caracaltest.New(opt)
			if s != nil {
				s.Close()
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), name)
		})
	}
}

// WriteConfig with an empty dir is refused rather than writing the profile
// and the client secret into the working directory.
func TestWriteConfigRefusesEmptyDir(t *testing.T) {
	st := caracaltest.Start(t)
	t.Chdir(t.TempDir())
	p, err := st.WriteConfig("")
	require.Error(t, err)
	assert.Empty(t, p)
	entries, err := os.ReadDir(".")
	require.NoError(t, err)
	assert.Empty(t, entries, "WriteConfig wrote into the working directory")
}

// A fault's Code, Description and RetryAfter shape the error answer of its
// Status, and Drop sends no answer at all: a fault that sets them where they
// cannot apply is refused rather than installed with the field ignored, which
// used to let the route answer normally (or drop) as if it were not set.
// An informational Status is no answer either: it ended in an empty 200.
func TestInjectRefusesFieldsThatWouldBeIgnored(t *testing.T) {
	st := caracaltest.Start(t)
	for name, f := range map[string]caracaltest.Fault{
		"Code without Status":        {Code: "rate_limited", Times: 1},
		"Description without Status": {Description: "down for maintenance"},
		"RetryAfter without Status":  {RetryAfter: time.Second, Delay: time.Millisecond},
		"RetryAfter with Drop":       {RetryAfter: time.Second, Drop: true},
		"Status with Drop":           {Status: 503, Drop: true},
		"informational Status":       {Status: 103, Times: 1},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Panics(t, func() { st.Inject(caracaltest.RouteStart, f) })
		})
	}
	c, err := st.NewClient()
	require.NoError(t, err)
	defer c.Close(t.Context())
	_, err = c.Spawn(t.Context())
	require.NoError(t, err, "a refused fault is not installed")

	for name, f := range map[string]caracaltest.Fault{
		"pass one request": {Times: 1},
		"slow":             {Delay: time.Millisecond},
		"drop":             {Drop: true, Delay: time.Millisecond},
		"error answer":     {Status: 429, Code: "rate_limited", RetryAfter: time.Second, Delay: time.Millisecond},
	} {
		t.Run(name, func(t *testing.T) {
			assert.NotPanics(t, func() { st.Inject(caracaltest.RouteStart, f) })
		})
	}
}

// A fault that changes nothing and never runs out (no Status, Drop or Delay,
// no Times or For) is refused: it let every request through unchanged and
// held back every fault injected on the route after it, for good.
func TestInjectRefusesFaultThatDoesNothing(t *testing.T) {
	st := caracaltest.Start(t)
	assert.PanicsWithValue(t,
		`caracaltest: Inject("POST /zones/{zone}/agents"): the fault changes nothing and never runs out; set Status, Drop or Delay, or limit it with Times or For`,
		func() { st.Inject(caracaltest.RouteStart, caracaltest.Fault{}) })
	assert.NotPanics(t, func() { st.Inject(caracaltest.RouteStart, caracaltest.Fault{For: time.Minute}) })
}

// Start fails the test with New's error as it is: the message names the
// package once.
func TestStartFailsWithNewsError(t *testing.T) {
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		caracaltest.Start(rec, caracaltest.WithLease(-time.Second))
	}()
	<-done
	require.Len(t, rec.msgs, 1)
	assert.Contains(t, rec.msgs[0], "WithLease")
	assert.Equal(t, 1, strings.Count(rec.msgs[0], "caracaltest:"), rec.msgs[0])
}

// fatalRecorder records what a test is failed with; its Fatal ends the
// calling goroutine, as testing's does.
type fatalRecorder struct {
	testing.TB
	msgs []string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatal(args ...any) {
	r.msgs = append(r.msgs, fmt.Sprint(args...))
	runtime.Goexit()
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
	runtime.Goexit()
}

// Two resources with one database id, given or derived from their
// identifiers, make New fail: the Coordinator's resource_id would name
// either of them.
func TestNewRefusesTwoResourcesWithOneID(t *testing.T) {
	for name, pair := range map[string][2]caracaltest.Resource{
		"given":   {{Identifier: "resource://a", ID: "res-shared"}, {Identifier: "resource://b", ID: "res-shared"}},
		"derived": {{Identifier: "resource://a.b"}, {Identifier: "resource://a-b"}},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := caracaltest.New(caracaltest.WithResource(pair[0]), caracaltest.WithResource(pair[1]))
			if s != nil {
				s.Close()
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "used twice")
		})
	}
}
