package caracaltest

import (
	"fmt"
	"slices"
	"strings"
)

// Inject installs a fault on a route, given by its pattern (one of the Route
// constants). Faults on one route apply in Inject order, each until its
// Times or For runs out. An unknown pattern panics: a typo would otherwise
// make the fault silently never happen.
//
// A negative Times, For, Delay or RetryAfter, or a Status outside 200-599,
// panics too, and so does a field the fault would ignore: Code, Description
// or RetryAfter without a Status, or Drop with one of them or a Status; and
// so does the zero Fault, which would change nothing and hold back every
// later fault on the route.
func (s *Stack) Inject(pattern string, f Fault) {
	s.mustKnow("Inject", pattern)
	if f.Times < 0 || f.For < 0 || f.Delay < 0 || f.RetryAfter < 0 {
		panic(fmt.Sprintf("caracaltest: Inject(%q): negative Times, For, Delay or RetryAfter", pattern))
	}
	if f.Status != 0 && (f.Status < 200 || f.Status > 599) {
		panic(fmt.Sprintf("caracaltest: Inject(%q): invalid Status %d", pattern, f.Status))
	}
	if f.Drop && f.Status != 0 {
		panic(fmt.Sprintf("caracaltest: Inject(%q): Drop sends no answer, so Status %d would be ignored; set one of them", pattern, f.Status))
	}
	if f.Status == 0 && (f.Code != "" || f.Description != "" || f.RetryAfter > 0) {
		panic(fmt.Sprintf("caracaltest: Inject(%q): Code, Description and RetryAfter shape the answer of a Status; without one they would be ignored", pattern))
	}
	if f == (Fault{}) {
		panic(fmt.Sprintf("caracaltest: Inject(%q): the fault changes nothing and never runs out; set Status, Drop or Delay, or limit it with Times or For", pattern))
	}
	s.faults.add(pattern, f)
}

// mustKnow panics unless pattern is a route of the stack.
func (s *Stack) mustKnow(caller, pattern string) {
	if _, ok := s.patterns[pattern]; ok {
		return
	}
	known := make([]string, 0, len(s.patterns))
	for p := range s.patterns {
		known = append(known, fmt.Sprintf("%q", p))
	}
	slices.Sort(known)
	panic(fmt.Sprintf("caracaltest: %s: no route %q (routes: %s)", caller, pattern, strings.Join(known, ", ")))
}

// ClearFaults removes every installed fault.
func (s *Stack) ClearFaults() { s.faults.clear() }

// Requests returns a copy of every request recorded since the start or the
// last ResetRecord, in arrival order. A request enters the record when its
// answer begins, or when it ends without one: a request still held (by a
// Delay, an approval long poll, a slow upstream) is not listed yet, so
// polling Requests or Count does not tell that a request has arrived.
// ResetRecord also drops the requests running when it is called.
func (s *Stack) Requests() []Request { return s.rec.all() }

// Count returns how many recorded requests a route served, by its pattern
// (one of the Route constants; "" counts upstream requests and requests no
// route matched). An unknown pattern panics, as in Inject, so that a typo
// cannot make a "no such request" assertion pass.
func (s *Stack) Count(pattern string) int {
	if pattern != "" {
		s.mustKnow("Count", pattern)
	}
	return s.rec.count(pattern)
}

// ResetRecord forgets the recorded requests.
func (s *Stack) ResetRecord() { s.rec.reset() }

// Approve approves a pending approval hold, as an operator would. It fails
// for an unknown hold or one that is no longer pending.
func (s *Stack) Approve(approvalID string) error { return s.w.decideApproval(approvalID, true) }

// Reject rejects a pending approval hold. It fails for an unknown hold or
// one that is no longer pending.
func (s *Stack) Reject(approvalID string) error { return s.w.decideApproval(approvalID, false) }

// Approvals lists the approval holds.
func (s *Stack) Approvals() []ApprovalInfo { return s.w.approvalList() }

// Sweep runs the Coordinator's lease and TTL sweepers now.
func (s *Stack) Sweep() { s.w.sweep() }

// Suspend suspends a session and its subtree, as an operator would. It
// fails unless the session exists and is active.
func (s *Stack) Suspend(sessionID string) error { return s.w.suspend(sessionID) }

// Resume resumes a suspended session and its subtree. It fails unless the
// session exists and is suspended.
func (s *Stack) Resume(sessionID string) error { return s.w.resume(sessionID) }

// Terminate ends a session and its subtree, revoking their edges. It fails
// for an unknown session or one that has already ended.
func (s *Stack) Terminate(sessionID string) error { return s.w.terminate(sessionID) }

// SessionInfo returns the Coordinator's view of a session.
func (s *Stack) SessionInfo(id string) (SessionInfo, bool) { return s.w.sessionInfo(id) }

// EdgeInfo returns the Coordinator's view of a delegation edge.
func (s *Stack) EdgeInfo(id string) (EdgeInfo, bool) { return s.w.edgeInfo(id) }

// RotateSigningKey rotates the zone's signing key, as an operator's key
// rotation on the STS does, and returns the new key id. Tokens issued from
// then on are signed with the new key and carry its id as kid. The JWKS
// lists the new key and the previous one, which keeps verifying the tokens
// signed before the rotation, at the Gateway and at resource servers, until
// it leaves the set 24 h later on the stack's Clock. The set holds at most
// these two keys: a second rotation within the 24 h drops the key before
// the previous one at once, with the tokens it signed. A rotation publishes
// the key set even before the zone's first token exchange.
//
// A resource server caches the key set (the JWKS allows 300 s), so it first
// meets the new key id on a token issued after the rotation; see
// caracal.VerifyTokens for how its middleware refetches.
func (s *Stack) RotateSigningKey() string {
	k, err := newSigningKey()
	if err != nil {
		// crypto/rand does not fail; nothing a test could do about it.
		panic(err)
	}
	s.w.rotateKey(k)
	return k.kid
}
