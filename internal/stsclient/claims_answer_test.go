package stsclient

import (
	"fmt"
	"net/http"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/apierr"
)

// answering is a fake STS that answers every exchange with a token
// carrying claims.
func answering(claims map[string]any) *fakeSTS {
	return &fakeSTS{answer: func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":300}`, jwt(claims))
	}}
}

// Each claim of a mandate that contradicts the mint on its own is enough
// to refuse it; a token that carries none of them (not a JWT the SDK can
// read, or one without those claims) is not judged on them.
func TestMintAnswerClaims(t *testing.T) {
	req := MintRequest{Resource: "resource://tickets", Scopes: []string{"tickets:read"},
		AgentSessionID: "S1", DelegationEdgeID: "E1"}
	mandate := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"sid": "m1", "use": "gateway", "agent_session_id": "S1", "delegation_edge_id": "E1", "scope": "tickets:read"}
		edit(c)
		return c
	}
	for name, claims := range map[string]map[string]any{
		"session class":  mandate(func(c map[string]any) { c["use"] = "session" }),
		"other session":  mandate(func(c map[string]any) { c["agent_session_id"] = "S2" }),
		"other edge":     mandate(func(c map[string]any) { c["delegation_edge_id"] = "E2" }),
		"an added scope": mandate(func(c map[string]any) { c["scope"] = "tickets:read tickets:write" }),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := newClient(t, answering(claims)).Mint(t.Context(), req)
			require.ErrorIs(t, err, apierr.ErrUnavailable)
			assert.ErrorContains(t, err, "invalid token response")
		})
	}
	for name, claims := range map[string]map[string]any{
		"matching":            mandate(func(map[string]any) {}),
		"no delegation claim": {"sid": "m1", "exp": 1787393700},
	} {
		t.Run(name, func(t *testing.T) {
			tok, err := newClient(t, answering(claims)).Mint(t.Context(), req)
			require.NoError(t, err)
			assert.NotEmpty(t, tok.Value)
		})
	}
	// A UUID is the same id in either case.
	upper := req
	upper.AgentSessionID, upper.DelegationEdgeID = "0190F3C2-7A1B-7C3D-8E4F-5A6B7C8D9E0F", "0190F3C2-7A1B-7C3D-8E4F-5A6B7C8D9E10"
	_, err := newClient(t, answering(mandate(func(c map[string]any) {
		c["agent_session_id"], c["delegation_edge_id"] = "0190f3c2-7a1b-7c3d-8e4f-5a6b7c8d9e0f", "0190f3c2-7a1b-7c3d-8e4f-5a6b7c8d9e10"
	}))).Mint(t.Context(), upper)
	require.NoError(t, err)
}

// A lifecycle exchange answered with a token of another class, one naming
// a delegation edge, or one of another zone or application, is refused.
func TestLifecycleAnswerClaims(t *testing.T) {
	token := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"sid": "sid-1", "use": "session", "zone_id": "zone-test", "client_id": "app-test", "exp": 1787393700}
		edit(c)
		return c
	}
	for name, claims := range map[string]map[string]any{
		"gateway class":     token(func(c map[string]any) { c["use"] = "gateway" }),
		"a delegation edge": token(func(c map[string]any) { c["delegation_edge_id"] = "E1" }),
		"another zone":      token(func(c map[string]any) { c["zone_id"] = "zone-other" }),
		"another client":    token(func(c map[string]any) { c["client_id"] = "app-other" }),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := newClient(t, answering(claims)).Lifecycle(t.Context())
			require.ErrorIs(t, err, apierr.ErrUnavailable)
			assert.ErrorContains(t, err, "invalid token response")
		})
	}
	tok, err := newClient(t, answering(token(func(map[string]any) {}))).Lifecycle(t.Context())
	require.NoError(t, err)
	assert.Equal(t, "sid-1", tok.SID)
}

// A poll answer that omits the approval's id is judged on its state: only
// an id that names another approval makes it no answer.
func TestWaitApprovalAnswerWithoutID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hc := &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
			return jsonResponse(200, `{"state":"approved"}`), nil
		})}
		st, err := New(Config{BaseURL: "http://sts.invalid", HTTPClient: hc}).WaitApproval(t.Context(), "ap-1")
		require.NoError(t, err)
		assert.Equal(t, "approved", st.State)
	})
}
