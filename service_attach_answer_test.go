package caracal_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// Every lease acquire bumps the generation, so an acquire answered with the
// generation a handle of this client already holds is not a lease: the
// attach fails as an invalid answer rather than hand out a second handle
// that looks like the owner of the same generation, and the old handle,
// fenced by the acquire that did happen, ends.
func TestAttachAnsweredWithAHeldGenerationIsRefused(t *testing.T) {
	st := caracaltest.Start(t)
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	hc := &http.Client{Transport: editAnswers(base, "/lease", func(m map[string]any) { m["lease_generation"] = 1 })}
	c, err := st.NewClient(caracal.WithHTTPClient(hc))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	old, err := c.SpawnService(t.Context())
	require.NoError(t, err)
	require.Equal(t, int64(1), old.Generation())

	taken, err := c.AttachService(t.Context(), old.ID())
	require.ErrorIs(t, err, caracal.ErrUnavailable, "attached %v", taken)
	assert.Nil(t, taken)
	<-old.Done()
	assert.ErrorIs(t, old.Err(), caracal.ErrLeaseFenced)
}
