package caracal

import (
	"context"

	"github.com/caracal-go/caracal/internal/stsclient"
)

// MintUse mints a gateway mandate for the agent bound to ctx straight at the
// STS (no Transport involved) and returns the token's use claim, so that
// session tests can check what a session's delegation allows.
func MintUse(ctx context.Context, c *Client, resource string, scopes ...string) (string, error) {
	a, ok := FromContext(ctx)
	if !ok {
		return "", ErrNoSession
	}
	tok, err := c.sts.Mint(ctx, stsclient.MintRequest{
		Resource:         resource,
		Scopes:           scopes,
		AgentSessionID:   a.sessionID,
		DelegationEdgeID: a.delegationID,
	})
	return tok.Use, err
}

// KnownEdge reports the edge limits this process recorded for the agent.
func KnownEdge(a *Agent) (scopes []string, maxHops int, ok bool) {
	if a.edge == nil {
		return nil, 0, false
	}
	return a.edge.scopes, a.edge.maxHops, true
}
