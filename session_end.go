package caracal

import (
	"context"
	"errors"
	"fmt"
)

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
	// Marked under mu: a child whose track comes after this pass sees it.
	if a := handleAgent(self); a != nil && a.retired != nil {
		a.retired.Store(true)
	}
	for t := range c.lineage[id] {
		switch {
		case closer(t) == self:
		case t.id == id:
			t.agent.retired.Store(true)
			found = append(found, ended{t, ErrSessionClosed})
		default:
			found = append(found, ended{t, nil})
		}
	}
	c.mu.Unlock()
	for _, e := range found {
		t := e.s
		t.endUnder(id, e.cause)
		if isDone(t.closed) {
			c.untrack(t)
		}
	}
}

// endUnder ends s, whose session the retire of session id ended, with
// cause (nil: the cause of that session's Context, see parentCause),
// unless its own retire began first.
func (s *Session) endUnder(id string, cause error) {
	s.closeOnce.Do(func() {
		if cause == nil {
			cause = parentCause(s.agent, id)
		}
		s.endWith(cause)
		close(s.closed)
	})
}

// retiredAncestor returns the id of the session, among those this process
// started a's session under, whose retire succeeded, if any.
func retiredAncestor(a *Agent) string {
	for x := a.up; x != nil; x = x.up {
		if x.retired != nil && x.retired.Load() {
			return x.sessionID
		}
	}
	return ""
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

// index adds s to c.lineage under its own id and those of the sessions
// this process started it under, at any depth: the retire of any of them
// ends s. The caller holds c.mu.
func (c *Client) index(s *Session) {
	lineageIDs(s, func(id string) { addTo(&c.lineage, id, s) })
}

// unindex removes s from c.lineage. The caller holds c.mu.
func (c *Client) unindex(s *Session) {
	lineageIDs(s, func(id string) { removeFrom(c.lineage, id, s) })
}

// addTo adds s to the set of key in the index *m, making both as needed.
func addTo(m *map[string]map[*Session]struct{}, key string, s *Session) {
	if *m == nil {
		*m = make(map[string]map[*Session]struct{})
	}
	set := (*m)[key]
	if set == nil {
		set = make(map[*Session]struct{}, 1)
		(*m)[key] = set
	}
	set[s] = struct{}{}
}

// removeFrom removes s from the set of key in the index m, and the set once
// it is empty.
func removeFrom(m map[string]map[*Session]struct{}, key string, s *Session) {
	set := m[key]
	delete(set, s)
	if len(set) == 0 {
		delete(m, key)
	}
}

// lineageIDs calls f with the session id of s and those of the sessions
// this process started it under, at any depth. An id may come twice.
func lineageIDs(s *Session, f func(id string)) {
	f(s.id)
	for x := s.agent.up; x != nil; x = x.up {
		if x.sessionID != "" {
			f(x.sessionID)
		}
	}
}

// closedErr returns ErrSessionClosed, naming the session, when the session
// closed here or one of the parents this process started it under did (the
// Coordinator ends a session's subtree with it), and nil otherwise. It sees
// the end as soon as Close begins, before any Context learns of it. A
// session that ended for a reason of its own (a revoke, a lost lease)
// gives that reason.
func (a *Agent) closedErr() error {
	for x := a; x != nil; x = x.up {
		if isDone(x.done) {
			if x.life != nil {
				cause := context.Cause(x.life)
				var under string
				if x != a {
					under = " (session " + a.sessionID + " was started under it)"
				}
				switch {
				case cause != ErrSessionClosed && errors.Is(cause, ErrSessionClosed):
					if x == a {
						return cause
					}
					return fmt.Errorf("%w%s", cause, under)
				case leaseLoss(cause) || errors.Is(cause, ErrLeaseLost):
					// A lost lease: its reason says what to do (a
					// suspended service resumes), "spawn a new one" not.
					return leaseEnded{cause: cause, under: under}
				}
			}
			return fmt.Errorf("%w: session %s", ErrSessionClosed, a.sessionID)
		}
	}
	return nil
}
