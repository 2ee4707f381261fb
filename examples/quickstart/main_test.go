package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/caracaltest"
)

func TestQuickstartOnTheEmbeddedStack(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), nil, nil, &out))

	got := out.String()
	for _, want := range []string{
		`Connected to zone zone-test as application app-test \(embedded Caracal stack\)\.`,
		`Spawned agent session [0-9a-f-]{36} labelled \[dispatcher\]\.`,
		`Spawned narrowed child ([0-9a-f-]{36}) labelled \[reader\]: tickets:read on resource://tickets via delegation ([0-9a-f-]{36})\.`,
		`resource server: GET /tickets/42 from session [0-9a-f-]{36} via delegation [0-9a-f-]{36} \(hop 1\)`,
		`response: 200 OK \{"ticket":"42","status":"open"\}`,
		`heartbeat 3: lease renewed for 2m0s, generation 1, status active\.`,
		`Closed the service; closing the child and the root session\.`,
	} {
		require.Regexp(t, want, got)
	}

	// The resource server saw exactly the narrowed child and its delegation.
	child := regexp.MustCompile(`narrowed child ([0-9a-f-]{36}) .* via delegation ([0-9a-f-]{36})`).FindStringSubmatch(got)
	require.Len(t, child, 3)
	require.Contains(t, got, "from session "+child[1]+" via delegation "+child[2])
}

func TestQuickstartFailsClearlyOnABadScope(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-scope", "tickets:write"}, nil, &out)
	require.ErrorContains(t, err, "call the resource")
	require.ErrorContains(t, err, "role_scope_mismatch")
}

func TestQuickstartRejectsABrokenDeploymentConfig(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), nil, []string{"CARACAL_CONFIG=/nonexistent/caracal.toml"}, &out)
	require.ErrorContains(t, err, "/nonexistent/caracal.toml")
	require.Empty(t, out.String())
}

// Against a deployment (here a caracaltest stack reached only through its
// profile, as a real one would be), the same flow runs with the stack's own
// echo upstream as the resource.
func TestQuickstartAgainstADeployment(t *testing.T) {
	st := caracaltest.Start(t)
	profile, err := st.WriteConfig(t.TempDir())
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), nil, []string{"CARACAL_CONFIG=" + profile}, &out))
	got := out.String()
	require.Contains(t, got, "heartbeat 1: lease renewed for 2m0s")
	require.Contains(t, got, "Connected to zone zone-test as application app-test at "+st.CoordinatorURL()+".")
	require.Regexp(t, `response: 200 OK \{.*"path":"/tickets/42"`, got)
	require.Contains(t, got, "Closed the service")
	require.Equal(t, 1, st.Count(caracaltest.RouteGateway))
}

// A slow heartbeat answer does not shorten the lease the quickstart reports:
// the lease runs from when the heartbeat was sent, here a second (of the
// bubble's clock) before its answer.
func TestQuickstartReportsTheLeaseFromWhenTheHeartbeatWasSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := caracaltest.Start(t, caracaltest.InMemory())
		c, err := st.NewClient()
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		svc, err := c.SpawnService(t.Context())
		require.NoError(t, err)

		st.Inject(caracaltest.RouteHeartbeat, caracaltest.Fault{Delay: time.Second, Times: 1})
		var out bytes.Buffer
		say := func(format string, a ...any) { fmt.Fprintf(&out, format+"\n", a...) }
		require.NoError(t, heartbeats(t.Context(), svc, 2, say))
		require.NoError(t, svc.Close(t.Context()))
		assert.Equal(t, "  heartbeat 1: lease renewed for 2m0s, generation 1, status active.\n"+
			"  heartbeat 2: lease renewed for 2m0s, generation 1, status active.\n", out.String())
	})
}
