package stsclient

// Per-request gateway mandates: the mint and the checks of its answer.

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/caracal-go/caracal/internal/apierr"
	"github.com/caracal-go/caracal/internal/wire"
)

// Mint exchanges for a fresh single-use gateway mandate. It is never cached
// and never retried: a lost response may hide a minted token. A hold for
// human approval comes back as *apierr.ApprovalRequiredError.
func (c *Client) Mint(ctx context.Context, r MintRequest) (Token, error) {
	if c.Static() {
		return Token{}, apierr.ErrStaticToken
	}
	tok, _, err := c.post(ctx, wire.TokenRequest{
		ZoneID:           c.cfg.ZoneID,
		ApplicationID:    c.cfg.ApplicationID,
		ClientSecret:     c.cfg.ClientSecret,
		Scopes:           r.Scopes,
		Resources:        []string{r.Resource},
		AgentSessionID:   r.AgentSessionID,
		DelegationEdgeID: r.DelegationEdgeID,
		TTLSeconds:       r.TTLSeconds,
		ApprovalID:       r.ApprovalID,
	}, &r)
	if err != nil {
		return Token{}, err
	}
	// A mandate for another session or edge (or a token of another class)
	// would make the Gateway act with authority the request does not hold.
	if why := mismatch(tok, r); why != "" {
		return Token{}, fmt.Errorf("caracal: sts POST %s: invalid token response: the mandate %s: %w", tokenPath, why, apierr.ErrUnavailable)
	}
	return tok, nil
}

// mismatch says how a minted token's claims contradict the mint request
// ("" when they do not). A token that is not a JWT, or omits a claim, is
// not judged on it.
func mismatch(tok Token, r MintRequest) string {
	switch {
	case tok.Use != "" && tok.Use != wire.UseGateway:
		return "is not of class gateway"
	case tok.AgentSessionID != "" && wire.CanonicalID(tok.AgentSessionID) != wire.CanonicalID(r.AgentSessionID):
		return "names another session"
	case tok.DelegationEdgeID != "" && wire.CanonicalID(tok.DelegationEdgeID) != wire.CanonicalID(r.DelegationEdgeID):
		return "names another delegation"
	}
	for s := range strings.FieldsSeq(tok.Scope) {
		if !slices.Contains(r.Scopes, s) {
			return "carries a scope the mint did not ask for"
		}
	}
	return ""
}
