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
		// PROTOCOL §3.9: an empty 200, and the readiness body.
		{service: "sts", pattern: "GET /health", handler: func(rw http.ResponseWriter, _ *http.Request) {
			rw.WriteHeader(http.StatusOK)
		}},
		{service: "sts", pattern: "GET /ready", handler: func(rw http.ResponseWriter, _ *http.Request) {
			writeSTSJSON(rw, http.StatusOK, map[string]bool{"ok": true, "ready": true})
		}},
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

// stsRequestID adopts the caller's X-Request-Id verbatim (the STS does not
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
	fw := w.authFails[appID]
	if fw == nil {
		fw = &failWindow{start: now}
		w.authFails[appID] = fw
	}
	if now.Sub(fw.start) >= time.Minute {
		fw.start, fw.count = now, 0
	}
	fw.count++
	if fw.count > w.limits.AuthFailures {
		fw.blockedUntil = now.Add(authBlockDuration)
	}
}

// dropAuthWindows forgets the failure windows that are over and block
// nothing, as the real STS's per-minute counters expire. Failures are
// counted under any application id a client sends, so without this a
// client could grow the map without bound.
func (w *world) dropAuthWindows(now time.Time) {
	for id, fw := range w.authFails {
		if now.Sub(fw.start) >= time.Minute && !now.Before(fw.blockedUntil) {
			delete(w.authFails, id)
		}
	}
}
