package main

import (
	"bytes"
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/caracaltest"
)

// The worker's renewals and the fencing run on the bubble's clock, against
// an in-memory embedded stack.
func TestWorkerRenewsThenIsFencedByTheAttachingProcess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		require.NoError(t, run(t.Context(), nil, nil, &out, caracaltest.InMemory()))

		got := out.String()
		for _, want := range []string{
			`Worker 1 started service session ([0-9a-f-]{36}), generation 1, renewing every 1s in the background\.`,
			`worker 1: lease renewed in the background \(renewal 2\)\.`,
			`Worker 2 attached to session [0-9a-f-]{36}: generation 2; every older holder is fenced\.`,
			`worker 1: lease lost: .*session_lease_fenced`,
			`worker 1: its context ended, fenced: true`,
			`Worker 2 closed the service session\.`,
		} {
			require.Regexp(t, want, got)
		}
	})
}

func TestWorkerRefusesAnIntervalBelowOneSecond(t *testing.T) {
	err := run(context.Background(), []string{"-interval", "10ms"}, nil, &bytes.Buffer{})
	require.ErrorContains(t, err, "HeartbeatInterval")
}

func TestWorkerAgainstADeployment(t *testing.T) {
	st := caracaltest.Start(t)
	profile, err := st.WriteConfig(t.TempDir())
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), nil, []string{"CARACAL_CONFIG=" + profile}, &out))
	got := out.String()
	require.Regexp(t, `Worker 2 attached to session [0-9a-f-]{36}: generation 2`, got)
	require.Contains(t, got, "Worker 2 closed the service session.")
	require.Equal(t, 1, st.Count(caracaltest.RouteLease))
}

// A worker calls no resource, so a deployment's configuration needs no
// resource binding for it: the resources of its lifecycle token are enough.
func TestWorkerAgainstADeploymentWithoutBindings(t *testing.T) {
	st := caracaltest.Start(t)
	app := st.Application()
	environ := []string{
		"CARACAL_ZONE_ID=" + st.Zone(),
		"CARACAL_APPLICATION_ID=" + app.ID,
		"CARACAL_APP_CLIENT_SECRET=" + app.Secret,
		"CARACAL_STS_URL=" + st.STSURL(),
		"CARACAL_COORDINATOR_URL=" + st.CoordinatorURL(),
		"CARACAL_GATEWAY_URL=" + st.GatewayURL(),
		"CARACAL_APP_RESOURCES=resource://tickets",
	}
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), nil, environ, &out))
	require.Contains(t, out.String(), "Worker 2 closed the service session.")
}
