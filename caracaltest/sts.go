package caracaltest

import (
	"crypto/subtle"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/caracal-go/caracal/internal/wire"
)

// STS constants (PROTOCOL Appendix A).
const (
	maxTokenBody      = 64 << 10
	defaultTokenTTL   = 900 * time.Second
	tokenTTLCap       = 3600 * time.Second
	subjectTokenCap   = 900 * time.Second
	authBlockDuration = 60 * time.Second
	controlAudience   = "caracal-control"
	mintPeriod        = time.Minute
)

// stsState is the STS's share of the world beyond the model tables.
type stsState struct {
	// keysPublished turns true on the zone's first successful exchange: the
	// real STS creates a zone's signing key lazily, so its JWKS answers 404
	// before that (PROTOCOL §3.9).
	keysPublished bool
	// holds indexes approval holds by binding (one live hold per binding).
	holds map[string]*approval
	// holdSeq orders holds by creation for approvalList.
	holdSeq int64
}

// stsRoutes returns the STS endpoints.
func (w *world) stsRoutes() []route {
	return []route{
		{service: "sts", pattern: "POST /oauth/2/token", handler: w.handleToken},
		{service: "sts", pattern: "GET /approvals/{id}", handler: w.handleApproval},
		{service: "sts", pattern: "GET /.well-known/jwks.json", handler: w.handleJWKS},
	}
}

// stsFailure is a refused exchange: the status and body of PROTOCOL §9.1.
type stsFailure struct {
	status int
	code   string
	desc   string
	// hold is set for 401 interaction_required answers.
	hold *approval
}

func fail(status int, code, desc string) *stsFailure {
	return &stsFailure{status: status, code: code, desc: desc}
}

func badRequest(desc string) *stsFailure { return fail(http.StatusBadRequest, "invalid_token", desc) }

func denied(desc string) *stsFailure { return fail(http.StatusForbidden, "access_denied", desc) }

func policyDenied(reason string) *stsFailure {
	if reason == "" {
		return denied("policy denied")
	}
	return denied("policy denied (" + reason + ")")
}

var errInvalidCredentials = fail(http.StatusUnauthorized, "access_denied", "invalid client credentials")

// stsErrorBody is the token endpoint's error body.
type stsErrorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	RequestID   string `json:"requestId"`
}

// holdBody is the 401 interaction_required body (PROTOCOL §3.8).
type holdBody struct {
	Error             string `json:"error"`
	Description       string `json:"error_description"`
	ApprovalID        string `json:"approval_id"`
	ApprovalType      string `json:"approval_type"`
	State             string `json:"state"`
	Tier              string `json:"tier,omitempty"`
	Binding           string `json:"binding"`
	ApprovalExpiresAt string `json:"approval_expires_at"`
	RequestID         string `json:"requestId"`
}

func writeSTSFailure(rw http.ResponseWriter, rid string, f *stsFailure) {
	if f.hold != nil {
		rw.Header().Set("WWW-Authenticate", `Bearer error="interaction_required"`)
		writeSTSJSON(rw, f.status, holdBody{
			Error: "interaction_required", Description: "Human approval required for this request",
			ApprovalID: f.hold.id, ApprovalType: "human_approval", State: wire.ApprovalPending,
			Tier: f.hold.tier, Binding: f.hold.binding, ApprovalExpiresAt: wire.STSTime(f.hold.expiresAt),
			RequestID: rid,
		})
		return
	}
	writeSTSJSON(rw, f.status, stsErrorBody{Error: f.code, Description: f.desc, RequestID: rid})
}

// tokenRequest is a decoded POST /oauth/2/token form.
type tokenRequest struct {
	zoneID, appID, secret string
	scope                 string   // as sent, trimmed
	scopes                []string // the scope set: deduplicated, sorted
	resources             []string // trimmed, deduplicated, sorted
	agentSessionID        string
	edgeID                string
	sessionID             string // authority-record id
	approvalID            string
	ttl                   int
	subjectToken          string
}

// unsupportedFields are refused outright (PROTOCOL §3.1).
var unsupportedFields = []string{"actor_token", "client_assertion", "client_assertion_type"}

// parseTokenRequest applies the envelope rules of PROTOCOL §3.1, in order, up
// to (not including) the authentication rate limit.
func parseTokenRequest(r *http.Request) (*tokenRequest, *stsFailure) {
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		return nil, badRequest("query parameters are not allowed")
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, fail(http.StatusUnsupportedMediaType, "invalid_token", "application/x-www-form-urlencoded content type is required")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxTokenBody+1))
	if err != nil {
		return nil, badRequest("malformed request body")
	}
	if len(body) > maxTokenBody {
		return nil, fail(http.StatusRequestEntityTooLarge, "payload_too_large", "request body too large")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest("malformed request body")
	}
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k != "resource" && len(form[k]) > 1 {
			return nil, badRequest("duplicate form field: " + k)
		}
	}
	for _, k := range unsupportedFields {
		if _, ok := form[k]; ok {
			return nil, badRequest(k + " is not supported: authenticate the application with client_secret")
		}
	}
	req := &tokenRequest{
		zoneID:         form.Get("zone_id"),
		appID:          form.Get("application_id"),
		secret:         form.Get("client_secret"),
		scope:          strings.TrimSpace(form.Get("scope")),
		agentSessionID: strings.TrimSpace(form.Get("agent_session_id")),
		edgeID:         strings.TrimSpace(form.Get("delegation_edge_id")),
		sessionID:      strings.TrimSpace(form.Get("session_id")),
		approvalID:     strings.TrimSpace(form.Get("approval_id")),
		subjectToken:   form.Get("subject_token"),
	}
	if s := form.Get("ttl_seconds"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, badRequest("invalid ttl_seconds")
		}
		req.ttl = n
	}
	// The in-process Gateway needs no HMAC; an outside caller presenting the
	// Gateway's signature headers cannot hold its key.
	for _, h := range []string{"X-Caracal-Gateway-Timestamp", "X-Caracal-Gateway-Request", "X-Caracal-Gateway-Signature"} {
		if r.Header.Get(h) != "" {
			return nil, fail(http.StatusUnauthorized, "access_denied", "invalid gateway exchange signature")
		}
	}
	for _, res := range form["resource"] {
		res = strings.TrimSpace(res)
		if res == "" {
			return nil, badRequest("resource must not be empty")
		}
		if !slices.Contains(req.resources, res) {
			req.resources = append(req.resources, res)
		}
	}
	sort.Strings(req.resources)
	if form.Get("grant_type") != wire.GrantTypeTokenExchange {
		return nil, badRequest("unsupported grant_type")
	}
	stt, hasType := form["subject_token_type"]
	_, hasToken := form["subject_token"]
	switch {
	case hasType && stt[0] != wire.TokenTypeAccessToken && stt[0] != wire.TokenTypeIDToken:
		return nil, badRequest("unsupported subject_token_type")
	case hasToken && !hasType:
		return nil, badRequest("subject_token_type is required with subject_token")
	case hasType && !hasToken:
		return nil, badRequest("subject_token is required with subject_token_type")
	}
	req.scopes = wire.NormalizeScopes(strings.Fields(req.scope))
	return req, nil
}

// requestID adopts the caller's X-Request-Id verbatim (the STS does not
// validate it) or makes a UUIDv7.
func stsRequestID(r *http.Request) string {
	if id := r.Header.Get(wire.HeaderRequestID); id != "" {
		return id
	}
	return newID()
}

// tokenResult is a successful exchange.
type tokenResult struct {
	token     string
	expiresIn int
	scope     string
	targets   []string
}

func (t *tokenResult) body() wire.TokenResponse {
	return wire.TokenResponse{
		AccessToken: t.token, TokenType: "Bearer", ExpiresIn: t.expiresIn, Scope: t.scope,
		IssuedTokenType: wire.TokenTypeAccessToken, TargetResources: t.targets,
	}
}

// handleToken serves POST /oauth/2/token.
func (w *world) handleToken(rw http.ResponseWriter, r *http.Request) {
	rid := stsRequestID(r)
	rw.Header().Set(wire.HeaderRequestID, rid)
	req, f := parseTokenRequest(r)
	if f != nil {
		writeSTSFailure(rw, rid, f)
		return
	}
	w.mu.Lock()
	res, f := w.exchange(req)
	w.mu.Unlock()
	if f != nil {
		writeSTSFailure(rw, rid, f)
		return
	}
	writeSTSJSON(rw, http.StatusOK, res.body())
}

// exchange runs an application's (non-Gateway) token exchange. The caller
// holds w.mu.
func (w *world) exchange(req *tokenRequest) (*tokenResult, *stsFailure) {
	now := w.clock.Now()
	appID := strings.TrimSpace(req.appID)
	if fw := w.authFails[appID]; appID != "" && fw != nil && now.Before(fw.blockedUntil) {
		return nil, fail(http.StatusTooManyRequests, "provider_rate_limited", "authentication rate limit exceeded")
	}
	app, f := w.authenticateApp(req, appID, now)
	if f != nil {
		return nil, f
	}
	if req.subjectToken != "" {
		// Identity federation needs a subject_issuers row; the stack has none.
		return nil, fail(http.StatusUnauthorized, "invalid_token", "invalid subject_token")
	}
	if len(req.resources) == 0 {
		return nil, badRequest("at least one resource is required")
	}
	binding := w.binding(req, app.id)
	var held *approval
	if req.approvalID != "" {
		a, res, f := w.approvalRetry(req.approvalID, binding, now)
		if f != nil || res != nil {
			return res, f
		}
		held = a
	}
	if req.sessionID != "" {
		rec := w.records[req.sessionID]
		if rec == nil || rec.status != wire.StatusActive || !rec.expiresAt.After(now) {
			return nil, denied("authority record inactive or expired")
		}
		if rec.sessionType != "application" || rec.subjectID != app.id {
			return nil, denied("authority record not owned by caller")
		}
	}
	if req.edgeID != "" && req.agentSessionID == "" {
		return nil, denied("delegation requires a target Session")
	}
	if req.edgeID == "" {
		return w.bootstrap(req, app, now)
	}
	return w.mint(req, app, binding, held, now)
}

// authenticateApp checks the application credentials (PROTOCOL §3.3) and counts
// failures towards the lock-out.
func (w *world) authenticateApp(req *tokenRequest, appID string, now time.Time) (*application, *stsFailure) {
	if appID == "" {
		return nil, errInvalidCredentials
	}
	app := w.apps[appID]
	ok := app != nil && !app.expired && subtle.ConstantTimeCompare([]byte(app.secret), []byte(req.secret)) == 1
	switch {
	case req.zoneID == w.zone && ok:
		return app, nil
	case req.zoneID != "" && req.zoneID != w.zone && ok:
		return nil, fail(http.StatusForbidden, "zone_invalid",
			fmt.Sprintf("application %s is registered in zone %s, not in zone %s", appID, w.zone, req.zoneID))
	}
	w.countAuthFailure(appID, now)
	return nil, errInvalidCredentials
}

// countAuthFailure increments the application's fixed one-minute failure
// window and blocks it for 60 s once the count exceeds the limit.
func (w *world) countAuthFailure(appID string, now time.Time) {
	if w.authFails == nil {
		w.authFails = make(map[string]*failWindow)
	}
	fw := w.authFails[appID]
	if fw == nil {
		fw = &failWindow{start: now}
		w.authFails[appID] = fw
	}
	if now.Sub(fw.start) >= time.Minute {
		fw.start, fw.count = now, 0
	}
	fw.count++
	limit := w.limits.AuthFailures
	if limit <= 0 {
		limit = 60
	}
	if fw.count > limit {
		fw.blockedUntil = now.Add(authBlockDuration)
	}
}

// hasUpstream reports whether a resource has an upstream_url, which makes
// agent:lifecycle mintable on it.
func (w *world) hasUpstream(r *resource) bool {
	if r.upstreamURL != "" {
		return true
	}
	_, ok := w.upstreams[r.identifier]
	return ok
}

// mintable reports whether every scope is among the resource's mintable
// scopes (PROTOCOL §3.6 rule 2).
func (w *world) mintable(r *resource, scopes []string) bool {
	for _, s := range scopes {
		if !slices.Contains(r.scopes, s) && (s != wire.ScopeLifecycle || !w.hasUpstream(r)) {
			return false
		}
	}
	return true
}

// takeMint counts one mint against the (resource, application) fixed window
// and reports whether it is within the limit.
func (w *world) takeMint(r *resource, appID string, now time.Time) bool {
	if w.mintCounts == nil {
		w.mintCounts = make(map[mintKey]*mintWindow)
	}
	k := mintKey{resource: r.identifier, app: appID}
	mw := w.mintCounts[k]
	if mw == nil || now.Sub(mw.start) >= mintPeriod {
		mw = &mintWindow{start: now}
		w.mintCounts[k] = mw
	}
	mw.count++
	limit := w.limits.MintPerMinute
	if limit <= 0 {
		limit = 1000
	}
	return mw.count <= limit
}

// owns reports whether the policy grants name app as the resource's owner.
func (w *world) owns(r *resource, appID string) bool {
	g, ok := w.policy.Grants[r.identifier]
	return ok && g.Application == appID
}

// rolesCover reports whether some label is a role of the resource's grant
// whose scope list covers every scope.
func (w *world) rolesCover(r *resource, labels, scopes []string) bool {
	g := w.policy.Grants[r.identifier]
	for _, l := range labels {
		role, ok := g.Roles[l]
		if ok && subset(scopes, role) {
			return true
		}
	}
	return false
}

// subset reports whether every element of a is in b.
func subset(a, b []string) bool {
	for _, s := range a {
		if !slices.Contains(b, s) {
			return false
		}
	}
	return true
}

// bootstrap issues a lifecycle (use=session) token (PROTOCOL §3.6).
func (w *world) bootstrap(req *tokenRequest, app *application, now time.Time) (*tokenResult, *stsFailure) {
	var allowed []string
	reason := ""
	for _, id := range req.resources {
		r := w.resolveResource(id)
		if r == nil || !w.mintable(r, req.scopes) || !w.takeMint(r, app.id, now) {
			continue
		}
		if r.identifier == controlAudience {
			return nil, denied("the control resource is mintable only by a control key")
		}
		switch {
		case len(req.scopes) != 1 || req.scopes[0] != wire.ScopeLifecycle || req.agentSessionID != "":
			reason = "no_rule_matched"
		case !w.owns(r, app.id):
			reason = "resource_not_granted"
		default:
			if !slices.Contains(allowed, r.identifier) {
				allowed = append(allowed, r.identifier)
			}
		}
	}
	if len(allowed) == 0 {
		return nil, policyDenied(reason)
	}
	sort.Strings(allowed)
	life, f := tokenLifetime(req.ttl, tokenTTLCap)
	if f != nil {
		return nil, f
	}
	c := &tokenClaims{
		ClientID: app.id, Scope: req.scope, Use: wire.UseSession, SubType: "application", Target: allowed,
	}
	c.Subject = app.id
	c.Audience = []string{w.issuer}
	res, _, f := w.finish(c, recordSpec{sessionType: "application", subjectID: app.id}, now, life)
	return res, f
}

// finish records and signs a token and builds the exchange result.
func (w *world) finish(c *tokenClaims, spec recordSpec, now time.Time, life time.Duration) (*tokenResult, *authorityRecord, *stsFailure) {
	tok, rec, err := w.issue(c, spec, now, life)
	if err != nil {
		return nil, nil, fail(http.StatusInternalServerError, "internal_error", "token issuance failed")
	}
	return &tokenResult{token: tok, expiresIn: int(life / time.Second), scope: c.Scope, targets: c.Target}, rec, nil
}

// tokenLifetime applies the requested ttl_seconds rules (PROTOCOL §3.6 rule 7).
func tokenLifetime(ttl int, limit time.Duration) (time.Duration, *stsFailure) {
	switch {
	case ttl < 0:
		return 0, badRequest("ttl_seconds must be positive")
	case time.Duration(ttl)*time.Second > limit:
		return 0, badRequest("ttl_seconds exceeds token TTL cap")
	case ttl == 0:
		return defaultTokenTTL, nil
	}
	return time.Duration(ttl) * time.Second, nil
}

// delegation is a validated (session, edge) pair of a delegated exchange.
type delegation struct {
	target *session
	source *session
	edge   *edge
	c      edgeConstraints
	path   []*edge // root-most first, presented edge last
}

// edgeConstraints is the strict STS view of constraints_json. budget is not
// part of it: the v1 STS refuses an edge that carries one (PROTOCOL
// "Verified live").
type edgeConstraints struct {
	resources  []string
	maxHops    int
	ttlSeconds int
	expiresAt  string
}

// stsConstraints decodes constraints_json as strictly as the v1 STS does.
func stsConstraints(c wire.Constraints) (edgeConstraints, bool) {
	if c.Budget != 0 {
		return edgeConstraints{}, false
	}
	out := edgeConstraints{resources: c.Resources, maxHops: c.MaxHops, ttlSeconds: c.TTLSeconds, expiresAt: c.ExpiresAt}
	if out.maxHops == 0 {
		out.maxHops = c.MaxDepth
	}
	if out.maxHops == 0 {
		out.maxHops = defaultMaxHops
	}
	return out, true
}

// checkDelegation applies PROTOCOL §3.7 rows 7–12 to a (session, edge) pair
// presented by appID.
func (w *world) checkDelegation(sessionID, edgeID, appID string, now time.Time) (*delegation, *stsFailure) {
	e := w.edges[edgeID]
	if e == nil || e.status != wire.StatusActive || !e.expiresAt.After(now) {
		return nil, denied("delegation edge inactive or expired")
	}
	if e.target != sessionID {
		return nil, denied("delegation edge target mismatch")
	}
	src := w.sessions[e.source]
	if !w.sessionMintable(src) {
		return nil, denied("delegation source inactive or expired")
	}
	tgt := w.sessions[sessionID]
	if !w.sessionMintable(tgt) || tgt.app != appID {
		return nil, denied("delegation target inactive or unauthorized")
	}
	if src.app != e.issuer || tgt.app != e.receiver {
		return nil, denied("delegation application mismatch")
	}
	c, ok := stsConstraints(e.constraints)
	if !ok {
		return nil, denied("delegation constraints invalid")
	}
	return &delegation{target: tgt, source: src, edge: e, c: c}, nil
}

// checkLineage applies rows 15–17: the hop cap, the lineage walk of
// PROTOCOL §6.6 and the chain's continuity.
func (w *world) checkLineage(d *delegation) *stsFailure {
	if d.c.maxHops > 10 {
		return denied("delegation hop limit exceeds platform maximum")
	}
	path, ok := w.edgePath(d.edge.id)
	if !ok {
		return denied("delegation path invalid")
	}
	for i := 1; i < len(path); i++ {
		if path[i-1].target != path[i].source {
			return denied("delegation chain discontinuous")
		}
	}
	if path[len(path)-1].target != d.target.id {
		return denied("delegation chain endpoints mismatch")
	}
	d.path = path
	return nil
}

// insideEdge reports whether the resource is within the edge's resource scope
// (row 18).
func (d *delegation) insideEdge(r *resource) bool {
	if d.edge.resourceID != "" && d.edge.resourceID != r.id {
		return false
	}
	return len(d.c.resources) == 0 || slices.Contains(d.c.resources, r.identifier)
}

// delegatedLifetime applies row 24: the requested lifetime, then the clamps of
// the edge's remaining life and its constraints.
func (d *delegation) lifetime(ttl int, limit time.Duration, now time.Time) (time.Duration, *stsFailure) {
	life, f := tokenLifetime(ttl, limit)
	if f != nil {
		return 0, f
	}
	life = min(life, d.edge.expiresAt.Sub(now))
	if d.c.ttlSeconds > 0 {
		life = min(life, time.Duration(d.c.ttlSeconds)*time.Second)
	}
	if d.c.expiresAt != "" {
		t, err := wire.ParseTime(d.c.expiresAt)
		if err != nil {
			return 0, denied("delegation constraint expiry invalid")
		}
		if !t.After(now) {
			return 0, denied("delegation constraint expired")
		}
		life = min(life, t.Sub(now))
	}
	if life < time.Second {
		return 0, denied("effective delegation ttl expired")
	}
	return life.Truncate(time.Second), nil
}

// policyData reports malformed risk or approval-tier data.
func (w *world) policyData() string {
	for _, r := range w.policy.Risk {
		if r.Scope == "" || r.Tier == "" {
			return "malformed_risk_data"
		}
	}
	for _, t := range w.policy.ApprovalTiers {
		if t.Tier == "" || (t.Approver != "operator" && t.Approver != "subject" && t.Approver != "any") || t.TTL < 0 {
			return "malformed_approval_data"
		}
	}
	return ""
}

// mint issues a per-request gateway mandate (PROTOCOL §3.7).
func (w *world) mint(req *tokenRequest, app *application, binding string, held *approval, now time.Time) (*tokenResult, *stsFailure) {
	d, f := w.checkDelegation(req.agentSessionID, req.edgeID, app.id, now)
	if f != nil {
		return nil, f
	}
	if !subset(req.scopes, d.edge.scopes) {
		return nil, denied("requested scopes exceed delegation scopes")
	}
	if d.c.ttlSeconds > 0 && req.ttl > d.c.ttlSeconds {
		return nil, denied("requested ttl exceeds delegation ttl")
	}
	if f := w.checkLineage(d); f != nil {
		return nil, f
	}
	var allowed []string
	reason := ""
	for _, id := range req.resources {
		r := w.resolveResource(id)
		if r == nil || !w.mintable(r, req.scopes) || !d.insideEdge(r) || !w.takeMint(r, app.id, now) {
			continue
		}
		if r.identifier == controlAudience {
			return nil, denied("the control resource is mintable only by a control key")
		}
		switch {
		case len(req.scopes) == 0 || slices.Contains(req.scopes, wire.ScopeLifecycle):
			reason = "no_rule_matched"
		case !subset(req.scopes, d.edge.scopes):
			reason = "delegation_scope_exceeded"
		case w.policyData() != "":
			reason = w.policyData()
		case !w.owns(r, app.id):
			reason = "resource_not_granted"
		case !w.rolesCover(r, d.target.labels, req.scopes):
			reason = "role_scope_mismatch"
		default:
			if !slices.Contains(allowed, r.identifier) {
				allowed = append(allowed, r.identifier)
			}
		}
	}
	if len(allowed) == 0 {
		return nil, policyDenied(reason)
	}
	sort.Strings(allowed)
	if held == nil {
		var f *stsFailure
		held, f = w.gate(req, app.id, binding, allowed, now)
		if f != nil {
			return nil, f
		}
	}
	life, f := d.lifetime(req.ttl, tokenTTLCap, now)
	if f != nil {
		return nil, f
	}
	c := &tokenClaims{
		ClientID: app.id, Scope: req.scope, Use: wire.UseGateway, SubType: "application", Target: allowed,
	}
	c.Subject = app.id
	c.Audience = []string{w.issuer}
	c.setDelegation(d.path, w.epoch)
	res, rec, f := w.finish(c, recordSpec{sessionType: "application", subjectID: app.id}, now, life)
	if f != nil {
		return nil, f
	}
	if held != nil {
		w.consume(held, c, rec, res, now)
	}
	return res, nil
}
