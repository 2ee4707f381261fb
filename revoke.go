package caracal

import (
	"context"
	"fmt"
)

// maxReceived bounds the delegations recorded per handle as received
// (Delegate, AcceptDelegation); past it the oldest is forgotten, and its
// revoke is then not seen here until the session's next call.
const maxReceived = 64

// RevokeDelegation revokes a delegation this application issued, every
// delegation made under it, and ends the sessions that held them. The
// mandates the client's prefetching transports pooled are dropped with it.
//
// The sessions and services of this client that the revoke ended, as far
// as this process knows them, end here at once: a session presenting the
// delegation or one made under it (its Grant.Narrow, or an inherited copy),
// one that received it through this client's Delegate or AcceptDelegation,
// and their children. Their Contexts end with a cause matching
// ErrSessionClosed (a service's matches ErrLeaseLost, and OnLeaseLost
// runs); their Close still answers, and finds them gone.
//
// A revoke that fails because ctx ended or its answer was lost may still
// have taken effect on the Coordinator. Calling again then fails with
// ErrNotFound (an edge no longer active is not found), and the handles that
// held the delegation are not ended here: their next calls are refused.
func (c *Client) RevokeDelegation(ctx context.Context, edgeID string) error {
	if err := c.check(ctx, "RevokeDelegation", true); err != nil {
		return err
	}
	if edgeID == "" {
		return invalidGrant("RevokeDelegation needs the delegation id")
	}
	edgeID, err := callerID("RevokeDelegation", edgeID)
	if err != nil {
		return err
	}
	r, err := c.coord.RevokeDelegation(ctx, edgeID)
	if err != nil {
		return fmt.Errorf("caracal: revoking delegation %s: %w", edgeID, err)
	}
	if r.AffectedSessions > 0 {
		// The Coordinator also revokes the authority records the affected
		// sessions were started under (PROTOCOL §3.4), normally the one of
		// the cached lifecycle token: exchange a new one rather than hand
		// out, or call the Coordinator with, a token it now refuses.
		c.sts.Drop()
	}
	c.endRevoked(edgeID)
	// Mandates pooled before the revoke would still reach the Gateway.
	c.dropPools()
	return nil
}

// endRevoked ends the handles of this client whose sessions the revoke of
// edgeID ended (PROTOCOL §4.8): the target of the edge and of every edge
// made under it, with their subtrees. Children started here end with
// their parent (Spawn watches it), so only the holders are looked for.
func (c *Client) endRevoked(edgeID string) {
	var ended []closer
	c.mu.Lock()
	revoked := c.underRevoked(edgeID)
	for h := range c.open {
		if a := handleAgent(h); a != nil && c.holds(h, a, revoked) {
			ended = append(ended, h)
		}
	}
	c.mu.Unlock()
	for _, h := range ended {
		switch h := h.(type) {
		case *Session:
			h.endWith(fmt.Errorf("%w: session %s ended when delegation %s was revoked", ErrSessionClosed, h.id, edgeID))
		case *Service:
			h.lose(fmt.Errorf("caracal: service %s ended when delegation %s was revoked: %w", h.id, edgeID, ErrLeaseLost))
		}
	}
}

// underRevoked returns edgeID and the edges this client knows were made
// under it, at any depth: the edges of sessions narrowed or inheriting
// under it, and those its Delegate made under it. Called with c.mu held.
func (c *Client) underRevoked(edgeID string) map[string]bool {
	revoked := map[string]bool{edgeID: true}
	for grew := true; grew; {
		grew = false
		add := func(edge, parent string) {
			if edge != "" && parent != "" && revoked[parent] && !revoked[edge] {
				revoked[edge] = true
				grew = true
			}
		}
		for h := range c.open {
			if a := handleAgent(h); a != nil {
				add(a.delegationID, a.parentDelegationID)
			}
			for _, r := range c.received[h] {
				add(r.edge, r.parent)
			}
		}
	}
	return revoked
}

// holds reports whether the session of handle h (agent a) held one of the
// revoked edges: it presents one, its edge was made under one, or it
// received one here. Called with c.mu held.
func (c *Client) holds(h closer, a *Agent, revoked map[string]bool) bool {
	if revoked[a.delegationID] || revoked[a.parentDelegationID] {
		return true
	}
	for _, r := range c.received[h] {
		if revoked[r.edge] {
			return true
		}
	}
	return false
}

// receivedEdge is a delegation a handle received through this client, and
// the edge it was made under ("" for a root edge, or when not known).
type receivedEdge struct{ edge, parent string }

// receivedBy records that the session sessionID, if this client holds it,
// received the delegation edgeID, made under parentID, so that revoking
// either here ends it.
func (c *Client) receivedBy(sessionID, edgeID, parentID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h := range c.open {
		if a := handleAgent(h); a != nil && a.sessionID == sessionID {
			edges := c.received[h]
			if len(edges) == maxReceived {
				edges = edges[1:]
			}
			if c.received == nil {
				c.received = make(map[closer][]receivedEdge)
			}
			c.received[h] = append(edges, receivedEdge{edgeID, parentID})
		}
	}
}

// handleAgent returns the agent of a session or service handle, nil for
// other tracked values.
func handleAgent(h closer) *Agent {
	switch h := h.(type) {
	case *Session:
		return h.agent
	case *Service:
		return h.agent
	}
	return nil
}

// dropPools drops the pools of every prefetching transport of c: a
// delegation revoked here also revokes the ones made under it and ends
// their sessions, which no pool key tells.
func (c *Client) dropPools() {
	for _, p := range c.prefetchers() {
		p.mu.Lock()
		for _, pl := range p.pools {
			p.dropLocked(pl)
		}
		p.mu.Unlock()
	}
}

// dropSessionPools drops the pools of every prefetching transport of c for
// the session id, whose session or delegation the Gateway reported revoked.
func (c *Client) dropSessionPools(id string) {
	for _, p := range c.prefetchers() {
		p.mu.Lock()
		for k, pl := range p.pools {
			if k.session == id {
				p.dropLocked(pl)
			}
		}
		p.mu.Unlock()
	}
}

// prefetchers returns the prefetchers of c's prefetching transports.
func (c *Client) prefetchers() []*prefetcher {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ps []*prefetcher
	for h := range c.open {
		if p, ok := h.(*prefetcher); ok {
			ps = append(ps, p)
		}
	}
	return ps
}
