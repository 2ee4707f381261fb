package caracaltest

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Row 3 of the Gateway's checks asks for three segments and a payload that
// decodes; an empty header or signature segment is still three segments, so
// such a token fails a later check (here the pre-flight window, the client
// id header, then the signature), not "malformed bearer token".
func TestGatewayEmptyHeaderOrSignatureSegmentIsNotMalformed(t *testing.T) {
	env := newSTSEnv(t)
	payload := func(exp time.Time) string {
		b, err := json.Marshal(map[string]any{"exp": exp.Unix(), "zone_id": exZone, "client_id": exApp, "use": "gateway", "jti": "j"})
		require.NoError(t, err)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	live, expired := payload(exStart.Add(time.Hour)), payload(exStart.Add(-time.Minute))
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`))
	for name, tc := range map[string]struct {
		tok    string
		extra  []string
		status int
		code   string
		desc   string
	}{
		"no signature, expired": {tok: hdr + "." + expired + ".", status: 401,
			code: "credential_expired_not_renewable", desc: "credential expiring within pre-flight window"},
		"no header, expired": {tok: "." + expired + ".c2ln", status: 401,
			code: "credential_expired_not_renewable", desc: "credential expiring within pre-flight window"},
		"no signature, client id header": {tok: hdr + "." + live + ".", extra: []string{"X-Caracal-Client-ID", exApp},
			status: 400, code: "invalid_token", desc: "client identity derives from the bearer token"},
		"no signature":            {tok: hdr + "." + live + ".", status: 401, code: "invalid_token", desc: "bearer signature invalid"},
		"nothing but the payload": {tok: "." + live + ".", status: 401, code: "invalid_token", desc: "bearer signature invalid"},
	} {
		t.Run(name, func(t *testing.T) {
			hdrs := append([]string{"Authorization", "Bearer " + tc.tok}, tc.extra...)
			requireError(t, env.gateway(t, http.MethodGet, "/tickets/42", "", hdrs...), tc.status, tc.code, tc.desc)
		})
	}
	require.Equal(t, 0, env.seenCount())
}
