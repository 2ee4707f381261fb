package coordclient

// Delegations: the keyed create, its answer's check against the request,
// the revoke and the inbound-edge reads.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/caracal-go/caracal/internal/wire"
)

// Delegate creates a delegation edge. An empty idempotencyKey sends none and
// makes one attempt (plus one after a 401); with a key, a transient failure
// is retried DelegateRetries times with the same key. When the Coordinator
// refuses the key because the receipt limit is reached (nothing executed),
// the create is sent once more without a key, unless an earlier attempt may
// have executed: its edge could still commit beside a keyless one.
func (c *Client) Delegate(ctx context.Context, req wire.CreateDelegationRequest, idempotencyKey string) (wire.Delegation, error) {
	path := c.delegationsPath
	if req.Scopes == nil {
		req.Scopes = []string{} // the server wants an array
	}
	b, err := json.Marshal(req)
	if err != nil {
		return wire.Delegation{}, err
	}
	hdr := http.Header{}
	retries := 0 // without a key a resend could create a second edge
	if idempotencyKey != "" {
		hdr.Set(wire.HeaderIdempotencyKey, idempotencyKey)
		retries = DelegateRetries
	}
	var d wire.Delegation
	send := func(hdr http.Header) func() outcome {
		return func() outcome {
			d = wire.Delegation{}
			return c.do(ctx, http.MethodPost, path, hdr, fixedBody(b), &d)
		}
	}
	executed := false // an earlier keyed attempt may have committed
	var last outcome
	err = c.retrying(ctx, retries, func() outcome {
		executed = executed || last.ambiguous
		last = send(hdr)()
		return last
	})
	if last.api != nil && last.api.Code == codeReceiptLimit && idempotencyKey != "" && !executed {
		err = c.retrying(ctx, 0, send(nil)) // without a key a resend could create a second edge
	}
	if err != nil {
		return wire.Delegation{}, err
	}
	if d.DelegationEdgeID == "" {
		d.DelegationEdgeID = d.ID
	}
	if d.DelegationEdgeID == "" {
		return wire.Delegation{}, invalid(http.MethodPost, path, "no delegation_edge_id")
	}
	if !wire.ValidID(d.DelegationEdgeID) {
		return wire.Delegation{}, invalid(http.MethodPost, path, "a delegation_edge_id that is not a Coordinator id")
	}
	if why := delegationMismatch(d, req); why != "" {
		return wire.Delegation{}, invalid(http.MethodPost, path, why)
	}
	return d, nil
}

// delegationMismatch says how a created edge contradicts the create asked
// for ("" when it does not): such an answer is about another edge. A field
// the answer omits is not judged.
func delegationMismatch(d wire.Delegation, req wire.CreateDelegationRequest) string {
	differs := func(got, asked string) bool { return got != "" && wire.CanonicalID(got) != wire.CanonicalID(asked) }
	switch {
	case differs(d.SourceSessionID, req.SourceSessionID), differs(d.TargetSessionID, req.TargetSessionID):
		return "an edge between other sessions"
	case differs(d.IssuerApplicationID, req.IssuerApplicationID), differs(d.ReceiverApplicationID, req.ReceiverApplicationID):
		return "an edge between other applications"
	case d.ParentEdgeID != nil && req.ParentEdgeID != "" && differs(*d.ParentEdgeID, req.ParentEdgeID):
		return "an edge under another parent edge"
	}
	// An expiry asked for wins over a TTL (PROTOCOL §4.7) and comes back as
	// sent; a second of slack for how the Coordinator rounds it. An edge
	// given a TTL is not judged on its expiry: PROTOCOL counts the TTL from
	// the Coordinator's "now", which it does not tie to created_at.
	until := req.ExpiresAt
	if until == "" && req.Constraints != nil {
		until = req.Constraints.ExpiresAt
	}
	if exp, err := wire.ParseTime(d.ExpiresAt); err == nil && until != "" {
		if t, err := wire.ParseTime(until); err == nil && exp.After(t.Add(time.Second)) {
			return "an edge that expires later than asked"
		}
	}
	asked := wire.NormalizeScopes(req.Scopes)
	for _, s := range wire.NormalizeScopes(d.Scopes) {
		if !slices.Contains(asked, s) {
			return "an edge with scopes that were not asked for"
		}
	}
	return ""
}

// RevokeDelegation revokes an edge and its downstream edges.
func (c *Client) RevokeDelegation(ctx context.Context, id string) (wire.RevokeResponse, error) {
	path := "/zones/" + c.zone + "/delegations/" + url.PathEscape(id) + "/revoke"
	var r wire.RevokeResponse
	out := c.do(ctx, http.MethodPatch, path, nil, nil, &r)
	return r, out.err
}

// InboundEdge checks that edgeID is an active inbound edge of sessionID
// (404 delegation_not_found otherwise). A read, so a transient failure is
// retried ReadRetries times.
func (c *Client) InboundEdge(ctx context.Context, sessionID, edgeID string) (wire.InboundEdgeStatus, error) {
	path := "/zones/" + c.zone + "/delegations/inbound/" + url.PathEscape(sessionID) + "/" + url.PathEscape(edgeID)
	var r wire.InboundEdgeStatus
	err := c.retrying(ctx, ReadRetries, func() outcome {
		r = wire.InboundEdgeStatus{}
		return c.do(ctx, http.MethodGet, path, nil, nil, &r)
	})
	if err != nil {
		return wire.InboundEdgeStatus{}, err
	}
	if r.ID != edgeID {
		// Not about the edge asked about: it confirms nothing.
		return wire.InboundEdgeStatus{}, invalid(http.MethodGet, path, "the answer is not about this edge")
	}
	return r, nil
}

// InboundEdges lists the delegation edges into sessionID that the caller's
// application issued or receives, newest first, all statuses (the first
// page of up to 100). A read, so a transient failure is retried ReadRetries
// times.
func (c *Client) InboundEdges(ctx context.Context, sessionID string) ([]wire.Delegation, error) {
	path := "/zones/" + c.zone + "/delegations/inbound/" + url.PathEscape(sessionID)
	var r wire.InboundList
	err := c.retrying(ctx, ReadRetries, func() outcome {
		r = wire.InboundList{}
		return c.do(ctx, http.MethodGet, path, nil, nil, &r) // default page: 100
	})
	if err != nil {
		return nil, err
	}
	for i := range r.Items {
		if r.Items[i].DelegationEdgeID == "" {
			r.Items[i].DelegationEdgeID = r.Items[i].ID
		}
		// A listed edge may become a session's delegation: its id must be
		// one, as a created edge's is (see Delegate).
		if !wire.ValidID(r.Items[i].DelegationEdgeID) {
			return nil, invalid(http.MethodGet, path, "an edge without a Coordinator id")
		}
		if t := r.Items[i].TargetSessionID; t != "" && wire.CanonicalID(t) != wire.CanonicalID(sessionID) {
			// Not an edge into this session: it is not this session's
			// delegation.
			return nil, invalid(http.MethodGet, path, "an edge into another session")
		}
	}
	return r.Items, nil
}
