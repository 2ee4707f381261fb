package caracal_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// TestBootstrapTokenClaimsReadByExactName: the servers read a token's "exp"
// and "sid" by their exact names, so a later "EXP" or "SID" key must not
// stand in for them when the client judges its bootstrap token's expiry or
// names its authority record.
func TestBootstrapTokenClaimsReadByExactName(t *testing.T) {
	st := caracaltest.Start(t)
	enc := base64.RawURLEncoding.EncodeToString
	live := time.Now().Add(time.Hour).Unix()
	payload := fmt.Sprintf(`{"exp":%d,"EXP":1,"sid":"rec-a","SID":"rec-b","use":"session"}`, live)
	cfg := st.Config()
	cfg.ClientSecret = ""
	cfg.BootstrapToken = enc([]byte(`{"alg":"ES256","kid":"k"}`)) + "." + enc([]byte(payload)) + ".c2ln"
	c, err := caracal.NewFromConfig(cfg, caracal.WithHTTPClient(st.HTTPClient()))
	require.NoError(t, err, "the token's exp is an hour away")
	defer c.Close(context.Background())

	_, err = c.Spawn(t.Context())
	require.Error(t, err, "the test Coordinator refuses an unsigned token")
	assert.NotContains(t, err.Error(), "expired at 1970")
	var starts []caracaltest.Request
	for _, r := range st.Requests() {
		if r.Pattern == caracaltest.RouteStart {
			starts = append(starts, r)
		}
	}
	require.NotEmpty(t, starts, "the token went to the Coordinator, which judges it")
	var body struct {
		SubjectSessionID string `json:"subject_session_id"`
	}
	require.NoError(t, json.Unmarshal(starts[0].Body, &body))
	assert.Equal(t, "rec-a", body.SubjectSessionID)
}
