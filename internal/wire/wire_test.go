package wire

import (
	"net/url"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestJWTPart(t *testing.T) {
	// {"alg":"ES256"} . {"use":"session"} . sig
	const tok = "eyJhbGciOiJFUzI1NiJ9.eyJ1c2UiOiJzZXNzaW9uIn0.c2ln"
	for _, tc := range []struct {
		tok  string
		i    int
		want string
		ok   bool
	}{
		{tok, 0, `{"alg":"ES256"}`, true},
		{tok, 1, `{"use":"session"}`, true},
		{tok, 2, "sig", true},
		{"eyJhbGciOiJFUzI1NiJ9.eyJ1c2UiOiJzZXNzaW9uIn0=.c2ln", 1, `{"use":"session"}`, true}, // padded
		{tok, 3, "", false},
		{tok, -1, "", false},
		{"opaque-token", 0, "", false},
		{"a.b", 1, "", false},
		{"a.b.c.d", 1, "", false},
		{"eyJhbGciOiJFUzI1NiJ9.not*base64.c2ln", 1, "", false},
	} {
		b, ok := JWTPart(tc.tok, tc.i)
		assert.Equal(t, tc.ok, ok, "%s %d", tc.tok, tc.i)
		assert.Equal(t, tc.want, string(b), "%s %d", tc.tok, tc.i)
	}
}

func TestNormalizeScopes(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
	}{
		{nil, []string{}},
		{[]string{" b ", "a", "", "b"}, []string{"a", "b"}},
		{[]string{"tickets:write tickets:read", "tickets:read"}, []string{"tickets:read", "tickets:write"}},
		{[]string{"  x\ty  "}, []string{"x", "y"}},
	} {
		assert.Equal(t, tc.want, NormalizeScopes(tc.in), "%q", tc.in)
	}
}

func TestCanonicalID(t *testing.T) {
	for in, want := range map[string]string{
		"01A2265D-4236-7169-9643-7671F6C7397E":          "01a2265d-4236-7169-9643-7671f6c7397e",
		"01a2265d-4236-7169-9643-7671f6c7397e":          "01a2265d-4236-7169-9643-7671f6c7397e",
		"EDGE-1":                                        "EDGE-1", // not a UUID: ids are compared as they are
		"01A2265D42367169964376 71F6C7397E":             "01A2265D42367169964376 71F6C7397E",
		"01A2265D-4236-7169-9643-7671F6C7397G":          "01A2265D-4236-7169-9643-7671F6C7397G",
		"urn:uuid:01A2265D-4236-7169-9643-7671F6C7397E": "urn:uuid:01A2265D-4236-7169-9643-7671F6C7397E",
	} {
		assert.Equal(t, want, CanonicalID(in), in)
	}
}

// TestTokenRequestEncode checks the body against url.Values, which the
// STS parses it with.
func TestTokenRequestEncode(t *testing.T) {
	for _, r := range []TokenRequest{
		{ZoneID: "z", ApplicationID: "app", ClientSecret: "s&=+% /é", Scopes: []string{ScopeLifecycle},
			Resources: []string{"resource://a", "resource://b?x=1"}},
		{ZoneID: "z", ApplicationID: "app", ClientSecret: "s", Scopes: []string{"t:w t:r", "t:r"},
			Resources: []string{"resource://tickets"}, AgentSessionID: "sess", DelegationEdgeID: "edge",
			TTLSeconds: 90, ApprovalID: "apr"},
		{Resources: []string{""}},
		{},
	} {
		want := url.Values{"grant_type": {GrantTypeTokenExchange}}
		for k, v := range map[string]string{
			"zone_id": r.ZoneID, "application_id": r.ApplicationID, "client_secret": r.ClientSecret,
			"scope": JoinScopes(r.Scopes), "agent_session_id": r.AgentSessionID,
			"delegation_edge_id": r.DelegationEdgeID, "approval_id": r.ApprovalID,
		} {
			if v != "" {
				want.Set(k, v)
			}
		}
		for _, res := range r.Resources {
			want.Add("resource", res)
		}
		if r.TTLSeconds > 0 {
			want.Set("ttl_seconds", strconv.Itoa(r.TTLSeconds))
		}
		got := r.Encode()
		assert.Equal(t, want.Encode(), got)
		parsed, err := url.ParseQuery(got)
		assert.NoError(t, err)
		assert.Equal(t, len(want), len(parsed))
	}
}
