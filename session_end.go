package caracal

import "context"

// endRetired ends this client's handles that the retire of session id
// ended too, in one pass over the handles: its twins (other handles on the
// same session, which a start replayed under the caller's idempotency key
// gives), and the sessions started under it at any depth, which the
// Coordinator ended with it (PROTOCOL §4.4). self is the handle that
// retired it. Their Context ends and their Close returns nil, and the
// client forgets them, so that a caller who closes only the parent leaves
// nothing behind. One whose own retire is under way stays until it ends, so
// that Client.Close waits for it; one whose retire failed is let go, since
// the session is retired now.
func (c *Client) endRetired(id string, self closer) {
	type ended struct {
		s     *Session
		cause error
	}
	var found []ended
	c.mu.Lock()
	for h := range c.open {
		t, ok := h.(*Session)
		if !ok || h == self {
			continue
		}
		switch {
		case t.id == id:
			found = append(found, ended{t, ErrSessionClosed})
		case startedUnder(t.agent, id):
			found = append(found, ended{t, nil})
		}
	}
	c.mu.Unlock()
	for _, e := range found {
		t, cause := e.s, e.cause
		t.closeOnce.Do(func() {
			if cause == nil {
				cause = parentCause(t.agent, id)
			}
			t.endWith(cause)
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
