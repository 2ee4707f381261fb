package caracal_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal"
)

// A mint refused with role_scope_mismatch (no label of the session names a
// role the zone's grant maps to every scope asked) says so through the
// *url.Error http.Client.Do returns: the session's labels, the scopes
// asked, and what the labels must be, keeping the STS's answer.
func TestMintRefusedForTheRoleSaysWhatTheLabelsMustBe(t *testing.T) {
	g := startGoverned(t)
	stranger := g.child(t, "stranger", tickets, "tickets:read")
	hc := &http.Client{Transport: g.c.Transport(nil, caracal.WithScopes("tickets:read"))}

	_, err := get(t, hc, stranger.Context(), g.url(tickets, "/tickets/42"))
	var ue *url.Error
	require.ErrorAs(t, err, &ue)
	var e *caracal.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, http.StatusForbidden, e.StatusCode)
	assert.Equal(t, "policy denied (role_scope_mismatch)", e.Description)
	assert.NotEmpty(t, e.RequestID)
	assert.ErrorIs(t, err, caracal.ErrAccessDenied)
	assert.ErrorContains(t, err, `labels ["stranger"]`)
	assert.ErrorContains(t, err, "labels are role names")
	assert.ErrorContains(t, err, "maps to every scope asked (tickets:read)")
	assert.NotContains(t, err.Error(), g.st.Application().Secret)
	assert.Zero(t, g.upstream.Load())

	// The labels are only those of a session this process started: a
	// labelled reader asking for a scope its role lacks is told the same.
	write := g.child(t, "reader", tickets, "tickets:read", "tickets:write")
	hc = &http.Client{Transport: g.c.Transport(nil, caracal.WithScopes("tickets:read", "tickets:write"))}
	_, err = get(t, hc, write.Context(), g.url(tickets, "/tickets/42"))
	assert.ErrorContains(t, err, `labels ["reader"]`)
	assert.ErrorContains(t, err, "(tickets:read tickets:write)")
}
