package caracaltest

import (
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/caracal-go/caracal/internal/wire"
)

// Gateway constants (PROTOCOL §8, Appendix A).
const (
	gatewayPreflight   = 35 * time.Second
	gatewayBodyMax     = 10 << 20
	gatewayTokenExpiry = "X-Caracal-Token-Expires-In"
	headerClientID     = "X-Caracal-Client-ID"
	statusClientClosed = 499
)

// tokenIDPattern is what a token's zone_id and client_id must match.
var tokenIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// traceparentPattern is a valid W3C traceparent (version 00).
var traceparentPattern = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$`)

// gatewayRoutes returns the Gateway's single catch-all route.
func (w *world) gatewayRoutes() []route {
	return []route{{service: "gateway", pattern: "/", handler: w.handleGateway}}
}

// gatewayFailure is a pre-dispatch refusal of the Gateway.
type gatewayFailure = stsFailure

func gwFail(status int, code, desc string) *gatewayFailure { return fail(status, code, desc) }

func writeGatewayFailure(rw http.ResponseWriter, rid string, f *gatewayFailure) {
	writeSTSJSON(rw, f.status, stsErrorBody{Error: f.code, Description: f.desc, RequestID: rid})
}

// gatewayRequestID adopts a client X-Request-Id of 1–128 printable ASCII
// characters, else makes a UUIDv4 (PROTOCOL §8.3).
func gatewayRequestID(r *http.Request) string {
	id := r.Header.Get(wire.HeaderRequestID)
	ok := len(id) >= 1 && len(id) <= 128
	for i := 0; ok && i < len(id); i++ {
		ok = id[i] >= 0x21 && id[i] <= 0x7e
	}
	if ok {
		return id
	}
	return uuid.NewString()
}

// pathTraversal reports a "." or ".." segment or a backslash in the request
// path after repeated percent-decoding. An invalid escape is kept as it is
// and the valid ones around it are still decoded, so that it cannot hide an
// encoded dot segment.
func pathTraversal(r *http.Request) bool {
	p := r.URL.EscapedPath()
	for range 10 {
		if strings.Contains(p, `\`) {
			return true
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == "." || seg == ".." {
				return true
			}
		}
		d := percentDecode(p)
		if d == p {
			return false
		}
		p = d
	}
	return true
}

// percentDecode decodes every valid %XX escape of s once and keeps the
// other bytes, invalid escapes included, as they are.
func percentDecode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(v))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// gatewayGrant is what the in-process exchange hands the proxy step.
type gatewayGrant struct {
	token    string // use=resource
	upstream upstream
	expIn    int // seconds until the presented mandate's exp
	mandate  *tokenClaims
}

// handleGateway serves every Gateway request: the checks of PROTOCOL §8.2 in
// order, the in-process exchange of §8.5, then the upstream call of §8.6.
func (w *world) handleGateway(rw http.ResponseWriter, r *http.Request) {
	rid := gatewayRequestID(r)
	rw.Header().Set(wire.HeaderRequestID, rid)
	switch r.URL.Path {
	case "/health":
		rw.WriteHeader(http.StatusOK)
		return
	case "/ready":
		writeSTSJSON(rw, http.StatusOK, map[string]bool{"ok": true, "ready": true})
		return
	case "/metrics", "/metrics.json":
		writeGatewayFailure(rw, rid, gwFail(http.StatusNotFound, "resource_not_found", "not found"))
		return
	case "/internal/revocations/reload":
		if r.Method == http.MethodPost {
			writeGatewayFailure(rw, rid, gwFail(http.StatusNotFound, "resource_not_found", "not found"))
			return
		}
	}
	g, f := w.admit(r)
	if f != nil {
		writeGatewayFailure(rw, rid, f)
		return
	}
	w.proxy(rw, r, rid, g)
}

// admit runs the Gateway's checks and the in-process STS exchange.
func (w *world) admit(r *http.Request) (*gatewayGrant, *gatewayFailure) {
	invalid := func(desc string) *gatewayFailure { return gwFail(http.StatusUnauthorized, "invalid_token", desc) }
	auth := r.Header.Get("Authorization")
	if len(auth) < 7 || !strings.EqualFold(auth[:7], "Bearer ") {
		return nil, invalid("missing bearer token")
	}
	tok := strings.TrimSpace(auth[7:])
	if tok == "" {
		return nil, invalid("missing bearer token")
	}
	if len(tok) > maxBearer {
		return nil, invalid("bearer token too large")
	}
	peek, ok := peekClaims(tok)
	if !ok {
		return nil, invalid("malformed bearer token")
	}
	now := w.clock.Now()
	exp := peek.ExpiresAt.Time
	if exp.Sub(now) < gatewayPreflight {
		return nil, gwFail(http.StatusUnauthorized, "credential_expired_not_renewable", "credential expiring within pre-flight window")
	}
	if _, ok := r.Header[http.CanonicalHeaderKey(headerClientID)]; ok {
		return nil, gwFail(http.StatusBadRequest, "invalid_token", "client identity derives from the bearer token")
	}
	resHeader := strings.TrimSpace(r.Header.Get(wire.HeaderResource))
	if resHeader == "" {
		return nil, gwFail(http.StatusBadRequest, "invalid_token", "missing routing headers")
	}
	if !tokenIDPattern.MatchString(peek.ZoneID) {
		return nil, invalid("missing token zone")
	}
	if !tokenIDPattern.MatchString(peek.ClientID) {
		return nil, invalid("missing token client")
	}
	if pathTraversal(r) {
		return nil, gwFail(http.StatusBadRequest, "invalid_token", "path traversal not permitted")
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	now = w.clock.Now()
	c, err := w.verifySignature(tok)
	if err != nil || c.ZoneID != w.zone {
		return nil, invalid("bearer signature invalid")
	}
	if c.Use != wire.UseSession {
		if seen, ok := w.seenJTI[c.ID]; ok && seen.After(now) {
			return nil, invalid("token replay detected")
		}
		w.rememberJTI(c.ID, exp, now)
	}
	if w.revoked(c) {
		return nil, invalid("session revoked")
	}
	res, tokR, f := w.gatewayExchange(c, resHeader, r.Method, r.URL.Path, now)
	if f != nil {
		return nil, f
	}
	up, ok := w.upstreams[resHeader]
	if !ok || res.identifier != resHeader {
		return nil, denied("resource upstream not configured")
	}
	if up.handler == nil && !addressable(up.url) {
		return nil, gwFail(http.StatusBadGateway, "internal_error", "upstream not addressable")
	}
	return &gatewayGrant{token: tokR, upstream: up, expIn: int(exp.Sub(now) / time.Second), mandate: c}, nil
}

// rememberJTI records a used jti until its token expires, dropping expired
// entries now and then so the cache stays small.
func (w *world) rememberJTI(jti string, exp, now time.Time) {
	if len(w.seenJTI)%256 == 255 {
		for k, e := range w.seenJTI {
			if !e.After(now) {
				delete(w.seenJTI, k)
			}
		}
	}
	w.seenJTI[jti] = exp
}

// revoked is the revocation-cache check (PROTOCOL §8.2 row 12, §8.4):
// revoked authority records, terminated sessions and revoked edges only.
func (w *world) revoked(c *tokenClaims) bool {
	for _, id := range []string{c.SID, c.RootSID} {
		if r := w.records[id]; r != nil && r.status == wire.StatusRevoked {
			return true
		}
	}
	if s := w.sessions[c.AgentSessionID]; s != nil && s.status == wire.StatusTerminated {
		return true
	}
	if e := w.edges[c.DelegationEdgeID]; e != nil && e.status == wire.StatusRevoked {
		return true
	}
	return false
}

// gatewayExchange is the STS side of the Gateway's exchange (PROTOCOL §8.5):
// it re-validates the mandate's session and edge, enforces declared
// operations and the policy "use" rule with the current grants, and issues
// the use=resource token for the upstream.
func (w *world) gatewayExchange(m *tokenClaims, resID, method, reqPath string, now time.Time) (*resource, string, *stsFailure) {
	badSubject := fail(http.StatusUnauthorized, "invalid_token", "invalid subject_token")
	if m.Use != wire.UseGateway || m.Issuer != w.issuer || !slices.Contains(m.Audience, w.issuer) ||
		m.ExpiresAt == nil || !m.ExpiresAt.Add(60*time.Second).After(now) {
		return nil, "", badSubject
	}
	rec := w.records[m.SID]
	app := w.apps[m.ClientID]
	if !rec.active(now) || rec.subjectID != m.Subject || app == nil || app.expired {
		return nil, "", badSubject
	}
	scopes := wire.NormalizeScopes(strings.Fields(m.Scope))
	if m.DelegationEdgeID == "" || m.AgentSessionID == "" {
		return nil, "", policyDenied("no_rule_matched")
	}
	d, f := w.checkDelegation(m.AgentSessionID, m.DelegationEdgeID, app.id, now)
	if f != nil {
		return nil, "", f
	}
	if !subset(scopes, d.edge.scopes) {
		return nil, "", denied("requested scopes exceed delegation scopes")
	}
	if f := w.checkLineage(d); f != nil {
		return nil, "", f
	}
	res := w.resolveResource(resID)
	if res == nil || !w.mintable(res, scopes) || !d.insideEdge(res) || !w.takeMint(res, app.id, now) {
		return nil, "", policyDenied("")
	}
	if res.identifier == controlAudience {
		return nil, "", denied("the control resource is mintable only by a control key")
	}
	if res.operations != nil {
		op := strings.ToUpper(method) + " " + strings.TrimSpace(reqPath)
		need, ok := res.operations[op]
		if !ok {
			return nil, "", fail(http.StatusForbidden, "operation_not_permitted",
				"operation "+op+" is not declared on resource "+res.identifier+"; declare it or use transport_uniform enforcement")
		}
		if !slices.Contains(scopes, need) {
			return nil, "", fail(http.StatusForbidden, "operation_not_permitted",
				"operation "+op+" on resource "+res.identifier+" requires scope "+need+", which the mandate does not carry")
		}
	}
	switch {
	case len(scopes) == 0:
		return nil, "", policyDenied("no_rule_matched")
	case !slices.Contains(m.Target, res.identifier), !w.owns(res, app.id):
		return nil, "", policyDenied("resource_not_granted")
	case !w.rolesCover(res, d.target.labels, scopes):
		return nil, "", policyDenied("role_scope_mismatch")
	}
	life, f := d.lifetime(0, subjectTokenCap, now)
	if f != nil {
		return nil, "", f
	}
	c := &tokenClaims{
		ClientID: app.id, Scope: m.Scope, Use: wire.UseResource, SubType: m.SubType,
		Target: []string{res.identifier}, RootSID: m.RootSID,
	}
	if c.RootSID == "" {
		c.RootSID = m.SID
	}
	c.Subject = m.Subject
	c.Audience = []string{res.identifier}
	c.setDelegation(d.path, w.epoch)
	tok, _, err := w.issue(c, recordSpec{sessionType: m.SubType, subjectID: m.Subject, parentID: m.SID}, now, life)
	if err != nil {
		return nil, "", fail(http.StatusInternalServerError, "internal_error", "token issuance failed")
	}
	return res, tok, nil
}

// addressable is row 16: an http(s) URL without userinfo whose host is not a
// link-local, metadata, multicast or unspecified address.
func addressable(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Hostname() == "" {
		return false
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil {
		if ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
			return false
		}
	}
	return true
}
