package coordclient

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/caracal-go/caracal/internal/h2test"
	"github.com/caracal-go/caracal/internal/wire"
)

// net/http's HTTP/2 transport re-sends a request whose stream the server
// reset with PROTOCOL_ERROR, which does not mean the Coordinator left it
// unprocessed, whenever it can rewind the body. A create without an
// Idempotency-Key is never sent twice that way: the first may have
// created the session or edge, and the second would create another.
func TestKeylessCreateIsNeverResentByHTTP2(t *testing.T) {
	limit := h2test.Action{Status: 429, Body: `{"error":"idempotency_receipt_limit_exceeded"}`}
	reset := h2test.Action{Reset: h2test.CodeProtocol}
	for name, tc := range map[string]struct {
		create  func(c *Client) error
		created string
	}{
		"session": {func(c *Client) error {
			_, err := c.Start(t.Context(), wire.StartSessionRequest{ApplicationID: "app-test"}, StartOptions{})
			return err
		}, sessionBody},
		"delegation": {func(c *Client) error {
			_, err := c.Delegate(t.Context(), wire.CreateDelegationRequest{}, NewIdempotencyKey())
			return err
		}, `{"delegation_edge_id":"E1"}`},
	} {
		t.Run(name, func(t *testing.T) {
			srv := h2test.Start(t, limit, reset, h2test.Action{Status: 201, Body: tc.created})
			c := New(Config{BaseURL: srv.URL(), ZoneID: "zone-test", HTTPClient: h2test.Client(t), Tokens: &tokens{}})
			require.Error(t, tc.create(c), "the reset keyless create fails")
			assert.Equal(t, 2, srv.Requests(), "the keyed create, then the keyless one once")
		})
	}
}

// A stream the Coordinator refused with REFUSED_STREAM was not processed
// (RFC 9113 §8.7), and net/http re-sends it when it can rewind the body. A
// heartbeat and a retire are repeatable (PROTOCOL §4.2): their bodies stay
// rewindable, so that refusal does not fail them.
func TestRepeatableCallSurvivesRefusedStream(t *testing.T) {
	refused := h2test.Action{Reset: h2test.CodeRefusedStream}
	for name, tc := range map[string]struct {
		call   func(c *Client) error
		answer h2test.Action
	}{
		"heartbeat": {func(c *Client) error {
			_, err := c.Heartbeat(t.Context(), "S1", 2)
			return err
		}, h2test.Action{Status: 200, Body: `{"agent":{"id":"S1","lease_generation":2}}`}},
		"retire": {func(c *Client) error {
			return c.Retire(t.Context(), "S1", 2)
		}, h2test.Action{Status: 204}},
	} {
		t.Run(name, func(t *testing.T) {
			srv := h2test.Start(t, refused, tc.answer)
			c := New(Config{BaseURL: srv.URL(), ZoneID: "zone-test", HTTPClient: h2test.Client(t), Tokens: &tokens{}})
			require.NoError(t, tc.call(c))
			assert.Equal(t, 2, srv.Requests(), "the refused request, then its re-send")
		})
	}
}
