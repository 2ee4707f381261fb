package caracal

import "context"

// endTwins ends this client's other handles on s's session (a start
// replayed under the caller's idempotency key gives a second one) once s
// has retired it: their Contexts end and their Close returns nil.
func (c *Client) endTwins(s *Session) {
	c.mu.Lock()
	var twins []*Session
	for h := range c.open {
		if t, ok := h.(*Session); ok && t != s && t.id == s.id {
			twins = append(twins, t)
		}
	}
	c.mu.Unlock()
	for _, t := range twins {
		t.closeOnce.Do(func() {
			t.endWith(ErrSessionClosed)
			close(t.closed)
		})
		// Also one whose own retire failed: the session is retired now.
		// (One still retiring stays, so that Client.Close waits for it.)
		if isDone(t.closed) {
			c.untrack(t)
		}
	}
}

// endChildren ends this client's session handles started under the session
// id, at any depth, once it was retired: the Coordinator ended them with it
// (PROTOCOL §4.4). Like endTwins, their Close then returns nil, and the
// client forgets them, so that a caller who closes only the parent leaves
// nothing behind. One whose retire is under way stays until it ends.
func (c *Client) endChildren(id string) {
	c.mu.Lock()
	var kids []*Session
	for h := range c.open {
		if t, ok := h.(*Session); ok && startedUnder(t.agent, id) {
			kids = append(kids, t)
		}
	}
	c.mu.Unlock()
	for _, t := range kids {
		t.closeOnce.Do(func() {
			t.endWith(parentCause(t.agent, id))
			close(t.closed)
		})
		if isDone(t.closed) {
			c.untrack(t)
		}
	}
}

// parentCause is why the session of a, started under the session id, ended
// with it: the cause of that session's Context when this process holds it,
// as a's Context gets it when it sees its parent's end.
func parentCause(a *Agent, id string) error {
	for x := a.up; x != nil; x = x.up {
		if x.sessionID == id && x.life != nil && x.life.Err() != nil {
			return context.Cause(x.life)
		}
	}
	return ErrSessionClosed
}

// startedUnder reports whether this process started a's session under the
// session id, at any depth.
func startedUnder(a *Agent, id string) bool {
	for x := a.up; x != nil; x = x.up {
		if x.sessionID == id {
			return true
		}
	}
	return false
}
