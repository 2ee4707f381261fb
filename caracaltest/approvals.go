package caracaltest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/caracal-go/caracal/internal/wire"
)

// Approval constants (PROTOCOL §3.8, Appendix A).
const (
	approvalWaitMax    = 25 * time.Second
	approvalReissue    = 2 * time.Minute
	approvalMinTTL     = 60 * time.Second
	policySetVersion   = "caracaltest-policy-1"
	decisionContract   = "2026-07-12"
	approverOperator   = "operator"
	approverSubject    = "subject"
	approverAny        = "any"
	approvalNotPending = "caracaltest: approval %s is %s, not pending"
)

// holdReissue is what re-issuing a consumed hold's token needs.
type holdReissue struct {
	claims tokenClaims
	result tokenResult
}

// approvalState is the hold's state on the world clock; precedence consumed >
// rejected > expired > approved > pending.
func approvalState(a *approval, now time.Time) string {
	switch a.state {
	case wire.ApprovalConsumed, wire.ApprovalRejected:
		return a.state
	}
	if !now.Before(a.expiresAt) {
		return wire.ApprovalExpired
	}
	return a.state
}

// binding is the hold identity of a mint (PROTOCOL §3.8).
func (w *world) binding(req *tokenRequest, appID string) string {
	var res []string
	for _, r := range req.resources {
		r = strings.ToLower(strings.TrimSpace(r))
		if !slices.Contains(res, r) {
			res = append(res, r)
		}
	}
	sort.Strings(res)
	h := sha256.New()
	for _, part := range []string{
		strings.Join(res, "\x1f"), strings.Join(req.scopes, "\x1f"), appID, req.sessionID,
		req.agentSessionID, req.edgeID, appID, w.zone, policySetVersion, decisionContract,
	} {
		h.Write([]byte(part))
		h.Write([]byte{0x1e})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// approvalRetry handles a mint that names approval_id (PROTOCOL §3.8 retry
// table). It returns the approved hold to consume, a re-issued token, or a
// failure.
func (w *world) approvalRetry(id, binding string, now time.Time) (*approval, *tokenResult, *stsFailure) {
	a := w.approvals[id]
	if a == nil || a.binding != binding {
		return nil, nil, fail(http.StatusUnauthorized, "access_denied", "approval not found or bindings do not match")
	}
	switch approvalState(a, now) {
	case wire.ApprovalPending:
		return nil, nil, &stsFailure{status: http.StatusUnauthorized, code: "interaction_required", hold: a}
	case wire.ApprovalRejected:
		return nil, nil, denied("approval was rejected")
	case wire.ApprovalExpired:
		return nil, nil, fail(http.StatusUnauthorized, "access_denied", "approval expired")
	case wire.ApprovalConsumed:
		rec := w.records[a.recordID]
		if a.reissue == nil || now.Sub(a.consumedAt) > approvalReissue || rec == nil ||
			rec.status != wire.StatusActive || !rec.expiresAt.After(now) {
			return nil, nil, fail(http.StatusConflict, "approval_consumed", "approval already used; another request consumed it")
		}
		// A lost response: a new token (new jti) for the same authority record.
		c := a.reissue.claims
		c.ID = newID()
		c.IssuedAt = jwt.NewNumericDate(now)
		tok, err := w.sign(&c)
		if err != nil {
			return nil, nil, fail(http.StatusInternalServerError, "internal_error", "token issuance failed")
		}
		res := a.reissue.result
		res.token = tok
		res.expiresIn = int(rec.expiresAt.Sub(now) / time.Second)
		return nil, &res, nil
	}
	return a, nil, nil
}

// gate turns an allowed mint into a hold when its scopes hit an approval
// tier. It returns an approved hold for the same binding (a retry without
// approval_id) to be consumed, or the hold failure.
func (w *world) gate(req *tokenRequest, appID, binding string, allowed []string, now time.Time) (*approval, *stsFailure) {
	tier, approver, ttl, f := w.approvalTiers(req.scopes)
	if f != nil || tier == "" {
		return nil, f
	}
	if w.sts.holds == nil {
		w.sts.holds = make(map[string]*approval)
	}
	if a := w.sts.holds[binding]; a != nil {
		switch approvalState(a, now) {
		case wire.ApprovalPending:
			return nil, &stsFailure{status: http.StatusUnauthorized, code: "interaction_required", hold: a}
		case wire.ApprovalApproved:
			return a, nil
		}
	}
	w.sts.holdSeq++
	a := &approval{
		id: uuid.NewString(), binding: binding, tier: tier, approver: approver, state: wire.ApprovalPending,
		expiresAt: now.Add(ttl), changed: make(chan struct{}),
		seq: w.sts.holdSeq, appID: appID, sessionID: req.agentSessionID, resources: allowed,
		scopes: slices.Clone(req.scopes),
	}
	w.approvals[a.id] = a
	w.sts.holds[binding] = a
	return nil, &stsFailure{status: http.StatusUnauthorized, code: "interaction_required", hold: a}
}

// approvalTiers returns the gated tiers the scopes hit (joined with ","), the
// approver class and the hold lifetime.
func (w *world) approvalTiers(scopes []string) (string, string, time.Duration, *stsFailure) {
	var names []string
	classes := map[string]bool{}
	var declared time.Duration
	for _, r := range w.policy.Risk {
		if !slices.Contains(scopes, r.Scope) {
			continue
		}
		for _, t := range w.policy.ApprovalTiers {
			if t.Tier != r.Tier || slices.Contains(names, t.Tier) {
				continue
			}
			names = append(names, t.Tier)
			classes[t.Approver] = true
			if t.TTL > 0 && (declared == 0 || t.TTL < declared) {
				declared = t.TTL
			}
		}
	}
	if len(names) == 0 {
		return "", "", 0, nil
	}
	sort.Strings(names)
	if classes[approverOperator] && classes[approverSubject] {
		return "", "", 0, denied("approval requires separate operator and subject decisions")
	}
	approver, def, maxTTL := approverAny, 15*time.Minute, 24*time.Hour
	switch {
	case classes[approverOperator]:
		approver, def, maxTTL = approverOperator, 4*time.Hour, 7*24*time.Hour
	case classes[approverSubject]:
		approver = approverSubject
	}
	ttl := def
	if declared > 0 {
		ttl = min(max(declared, approvalMinTTL), maxTTL)
	}
	return strings.Join(names, ","), approver, ttl, nil
}

// consume marks an approved hold used by the token just issued, remembering
// what a re-issue within the window needs.
func (w *world) consume(a *approval, c *tokenClaims, rec *authorityRecord, res *tokenResult, now time.Time) {
	a.state = wire.ApprovalConsumed
	a.consumedAt = now
	a.recordID = rec.id
	a.reissue = &holdReissue{claims: *c, result: *res}
}

// approvalStatus is the body of GET /approvals/{id}.
func approvalStatus(a *approval, now time.Time) wire.ApprovalStatus {
	return wire.ApprovalStatus{ID: a.id, State: approvalState(a, now), ExpiresAt: wire.STSTime(a.expiresAt)}
}

// handleApproval serves GET /approvals/{id}?wait=N: a long poll that answers
// as soon as the hold leaves pending, or when the wait ends.
func (w *world) handleApproval(rw http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	wait := time.Duration(0)
	if s, ok := r.URL.Query()["wait"]; ok {
		n, err := strconv.ParseUint(s[0], 10, 64)
		if err != nil {
			writeSTSJSON(rw, http.StatusBadRequest, plainError{"invalid_token", "invalid wait"})
			return
		}
		wait = approvalWaitMax
		if n < uint64(approvalWaitMax/time.Second) {
			wait = time.Duration(n) * time.Second
		}
	}
	notFound := plainError{"resource_not_found", "approval not found"}
	if _, err := uuid.Parse(id); err != nil {
		writeSTSJSON(rw, http.StatusNotFound, notFound)
		return
	}
	w.mu.Lock()
	a := w.approvals[id]
	if a == nil {
		w.mu.Unlock()
		writeSTSJSON(rw, http.StatusNotFound, notFound)
		return
	}
	now := w.clock.Now()
	st := approvalStatus(a, now)
	changed, left := a.changed, a.expiresAt.Sub(now)
	w.mu.Unlock()
	if st.State == wire.ApprovalPending && wait > 0 {
		t := time.NewTimer(min(wait, left))
		select {
		case <-changed:
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
		t.Stop()
		w.mu.Lock()
		st = approvalStatus(a, w.clock.Now())
		w.mu.Unlock()
	}
	writeSTSJSON(rw, http.StatusOK, st)
}

// decideApproval approves or rejects a pending hold, waking its long polls.
func (w *world) decideApproval(id string, approve bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	a := w.approvals[id]
	if a == nil {
		return fmt.Errorf("caracaltest: approval %s not found", id)
	}
	if st := approvalState(a, w.clock.Now()); st != wire.ApprovalPending {
		return fmt.Errorf(approvalNotPending, id, st)
	}
	a.state = wire.ApprovalRejected
	if approve {
		a.state = wire.ApprovalApproved
	}
	a.wake()
	return nil
}

// wake wakes the hold's parked long polls.
func (a *approval) wake() {
	close(a.changed)
	a.changed = make(chan struct{})
}

// wakeExpiredHolds wakes the long polls of holds that expired, once per
// hold. On the real clock a poll's own timer ends at the expiry; on a
// FakeClock only Advance or Set gets there, and they run the sweepers.
func (w *world) wakeExpiredHolds(now time.Time) {
	for _, a := range w.approvals {
		if !a.expiryWoken && approvalState(a, now) == wire.ApprovalExpired {
			a.expiryWoken = true
			a.wake()
		}
	}
}

// approvalList returns every hold, oldest first.
func (w *world) approvalList() []ApprovalInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.clock.Now()
	holds := make([]*approval, 0, len(w.approvals))
	for _, a := range w.approvals {
		holds = append(holds, a)
	}
	sort.Slice(holds, func(i, j int) bool { return holds[i].seq < holds[j].seq })
	out := make([]ApprovalInfo, 0, len(holds))
	for _, a := range holds {
		info := ApprovalInfo{
			ID: a.id, State: approvalState(a, now), Tier: a.tier, Approver: a.approver, Binding: a.binding,
			ExpiresAt: a.expiresAt, Scopes: slices.Clone(a.scopes), SessionID: a.sessionID,
		}
		if len(a.resources) > 0 {
			info.Resource = a.resources[0]
		}
		out = append(out, info)
	}
	return out
}
