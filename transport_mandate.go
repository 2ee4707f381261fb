package caracal

// The mandate a Gateway request presents: minted, taken from a pool, or the
// inbound one its context pinned.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/caracal-go/caracal/internal/apierr"
	"github.com/caracal-go/caracal/internal/stsclient"
	"github.com/caracal-go/caracal/internal/wire"
)

// mandate mints (or takes from the pool) a single-use gateway mandate.
func (t *transport) mandate(ctx context.Context, a *Agent, resource string, scopes []string) (stsclient.Token, error) {
	if a.sessionID == "" {
		return stsclient.Token{}, noSessionID("a Gateway request for " + resource)
	}
	if a.delegationID == "" {
		return stsclient.Token{}, errNoDelegation
	}
	r := stsclient.MintRequest{
		Resource:         resource,
		Scopes:           scopes,
		AgentSessionID:   a.sessionID,
		DelegationEdgeID: a.delegationID,
	}
	var tok stsclient.Token
	var err error
	if t.pool != nil {
		tok, err = t.pool.take(ctx, a, r)
	} else {
		tok, err = t.mint(ctx, r)
		if isApproval(err) {
			// The client's prefetching transports must not pool these
			// scopes after the approved retry.
			t.c.gate(gateKey{resource: resource, scopes: strings.Join(scopes, " ")})
		}
	}
	if err != nil {
		return stsclient.Token{}, mintError(err, r, a.labels)
	}
	// Measured on the STS's clock alone, so that clock skew plays no part:
	// the STS never mints past the delegation's end. The claims are whole
	// seconds and part of one has passed by the time the mandate arrives,
	// so exactly gatewayMinLife is too little.
	if life := tok.ExpClaim.Sub(tok.IssuedAt); !tok.IssuedAt.IsZero() && !tok.ExpClaim.IsZero() && life <= gatewayMinLife {
		return stsclient.Token{}, fmt.Errorf("%w: the gateway mandate for %s expires %v after it was minted, and the Gateway requires more than %v left when it arrives: delegation %s ends too soon to be used (narrow a new one with a longer TTL)",
			ErrInvalidGrant, r.Resource, life, gatewayMinLife, r.DelegationEdgeID)
	}
	return tok, nil
}

// mintError completes an approval hold with what was asked for, and says
// which resource a mint failed for; labels are the session's, nil when not
// known.
func mintError(err error, r stsclient.MintRequest, labels []string) error {
	var ae *apierr.ApprovalRequiredError
	if errors.As(err, &ae) {
		if ae.Resource == "" {
			ae.Resource = r.Resource
		}
		if ae.Scopes == nil {
			ae.Scopes = append([]string(nil), r.Scopes...)
		}
		return ae
	}
	var e *apierr.Error
	if errors.As(err, &e) && e.StatusCode == http.StatusForbidden && e.Description == "policy denied (role_scope_mismatch)" {
		// Labels are the role names the zone's grants match (PROTOCOL
		// §3.7): only the session's labels or the policy can fix this.
		session := "the session's labels"
		if labels != nil {
			session = fmt.Sprintf("the session's labels %q", labels)
		}
		return mintFailure{fmt.Errorf("caracal: minting a gateway mandate for %s with scopes %q: none of %s names a role that the zone's grant for %s maps to every scope asked (%s); labels are role names: spawn the session WithLabels naming such a role, ask only for scopes its role has, or grant them to that role in the zone's policy: %w",
			r.Resource, wire.JoinScopes(r.Scopes), session, r.Resource, wire.JoinScopes(r.Scopes), err)}
	}
	return mintFailure{fmt.Errorf("caracal: minting a gateway mandate for %s with scopes %q: %w", r.Resource, wire.JoinScopes(r.Scopes), err)}
}

// gatewayContextToken is the bearer of a Gateway request sent without
// scopes: only a pinned inbound use=gateway token qualifies, because the
// Gateway refuses every other class (and a lifecycle token sent there would
// leak Coordinator authority to the Gateway's upstream path).
func gatewayContextToken(a *Agent) (string, error) {
	if a.own || a.bearer() == "" || jwtUse(a.bearer()) != wire.UseGateway {
		return "", errNoScopes
	}
	if a.presented != nil && a.presented.Swap(true) {
		return "", errPinnedPresented
	}
	return a.bearer(), nil
}

// errPinnedPresented refuses to send a pinned gateway mandate a second time:
// the Gateway would refuse it as a replay.
var errPinnedPresented = errors.New("caracal: the context's gateway mandate was already presented once and the Gateway refuses a replay; give the transport scopes (WithScopes) so it mints one per request")

// jwtUse reads the use claim of a JWT without verifying it: the SDK is the
// token's holder here, and only wants to avoid sending a token the Gateway
// will refuse.
func jwtUse(tok string) string {
	payload, ok := wire.JWTPart(tok, 1)
	if !ok {
		return ""
	}
	var c struct {
		Use string `json:"use"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return ""
	}
	return c.Use
}

// mintFailure is a failed mint of a gateway mandate. http.Client.Do
// documents that the *url.Error it returns reports Timeout when the request
// timed out, and url.Error asks only the error the transport returned,
// without unwrapping it. So a mint cut short by a deadline (the request's,
// or Client.Timeout's) must say itself that it is a timeout, as the errors
// of the base transport do; otherwise whether the caller sees one depends on
// a race inside http.Client.
type mintFailure struct{ err error }

func (e mintFailure) Error() string { return e.err.Error() }
func (e mintFailure) Unwrap() error { return e.err }

// Timeout reports whether the mint failed because a deadline passed.
func (e mintFailure) Timeout() bool {
	if errors.Is(e.err, context.DeadlineExceeded) {
		return true
	}
	var t interface{ Timeout() bool }
	return errors.As(e.err, &t) && t.Timeout()
}
