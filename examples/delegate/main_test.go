package main

import (
	"bytes"
	"context"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/caracaltest"
)

func TestDelegateToAnExistingSessionThenRevoke(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), nil, &out))

	got := out.String()
	for _, want := range []string{
		`Dispatcher delegated \[tickets:read\] on resource://tickets to the peer: delegation ([0-9a-f-]{36}) until `,
		`the dispatcher's own context is unchanged: delegation ""\.`,
		`Peer accepted delegation [0-9a-f-]{36} \(hop 1\)\.`,
		`peer called the resource: 200 OK\.`,
		`peer's next call is refused: .*the session is closed`,
	} {
		require.Regexp(t, want, got)
	}
	edge := regexp.MustCompile(`to the peer: delegation ([0-9a-f-]{36})`).FindStringSubmatch(got)
	require.Len(t, edge, 2)
	require.Contains(t, got, "Peer accepted delegation "+edge[1])
}

func TestDelegateAgainstADeployment(t *testing.T) {
	st := caracaltest.Start(t)
	profile, err := st.WriteConfig(t.TempDir())
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"CARACAL_CONFIG=" + profile}, &out))
	got := out.String()
	require.Contains(t, got, "at "+st.CoordinatorURL())
	require.Contains(t, got, "peer called the resource: 200 OK.")
	require.Regexp(t, `peer's next call is refused: .*the session is closed`, got)
}
