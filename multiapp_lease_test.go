package caracal_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// B's service loses its lease while C waits for work: what B's code then
// tries from the service's context fails before any call, and the error
// keeps the reason the service ended (here a suspension, which Resume and
// AttachService recover), not only that it is closed.
func TestCallsFromALostServiceKeepItsCause(t *testing.T) {
	x := newThreeApps(t)
	svc, err := x.b.SpawnService(t.Context(), caracal.WithLabels("relay"))
	require.NoError(t, err)
	peer, err := x.c.SpawnService(t.Context(), caracal.WithLabels("worker"))
	require.NoError(t, err)
	require.NoError(t, x.st.Suspend(svc.ID()))
	_, err = svc.Heartbeat(t.Context())
	require.ErrorIs(t, err, caracal.ErrSuspended)
	require.ErrorIs(t, svc.Err(), caracal.ErrSuspended)

	before := len(x.st.Requests())
	_, err = x.b.Delegate(svc.Context(), peer.ID(),
		caracal.Grant.Narrow([]string{"c:read"}, "resource://c-api", caracal.Constraints{}, time.Minute), caracal.ToApplication("app-c"))
	assert.ErrorIs(t, err, caracal.ErrSessionClosed)
	assert.ErrorIs(t, err, caracal.ErrSuspended, "%v", err)
	_, err = x.b.Headers(svc.Context())
	assert.ErrorIs(t, err, caracal.ErrSuspended, "%v", err)
	_, err = x.b.SpawnService(svc.Context())
	assert.ErrorIs(t, err, caracal.ErrSuspended, "%v", err)
	assert.Contains(t, err.Error(), "Resume")
	assert.Len(t, x.st.Requests(), before, "refused before any call")
}
