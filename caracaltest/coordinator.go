package caracaltest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/caracal-go/caracal/internal/wire"
)

// Extra Coordinator routes beyond the exported Route constants.
const (
	routeInboundList = "GET /zones/{zone}/delegations/inbound/{sid}"
	routeGetSession  = "GET /zones/{zone}/agents/{id}"
	routeSuspend     = "PATCH /zones/{zone}/agents/{id}/suspend"
	routeHealth      = "GET /health"
	routeReady       = "GET /ready"
	routeCoordOther  = "/{unknown...}"
)

// coordinatorRoutes returns the Coordinator's routes (PROTOCOL §4).
func (w *world) coordinatorRoutes() []route {
	r := func(pattern string, h func(*call)) route {
		return route{service: "coordinator", pattern: pattern, handler: w.coordinatorHandler(h)}
	}
	health := func(rw http.ResponseWriter, _ *http.Request) {
		writeJSON(rw, http.StatusOK, map[string]bool{"ok": true})
	}
	return []route{
		r(RouteStart, w.startSession),
		r(RouteRetire, w.retireSession),
		r(RouteHeartbeat, w.heartbeat),
		r(RouteLease, w.acquireLease),
		r(RouteDelegate, w.createDelegation),
		r(RouteRevoke, w.revokeDelegation),
		r(RouteInbound, w.inboundEdge),
		r(routeInboundList, w.inboundList),
		r(routeGetSession, w.getSession),
		r(routeListSessions, w.listSessions),
		r(routeListChildren, w.listChildren),
		r(routeSuspend, w.suspendRoute),
		r(RouteResume, w.resumeRoute),
		{service: "coordinator", pattern: routeHealth, handler: health},
		{service: "coordinator", pattern: routeReady, handler: health},
		r(routeCoordOther, w.unknownRoute),
	}
}

// principal is the authenticated caller of a Coordinator route.
type principal struct {
	clientID string
	subject  string
	sid      string
	scopes   []string
}

// may reports whether the caller holds scope; lifecycle tokens never carry
// the coordinator.* scopes, but tokens minted by tests may.
func (p principal) may(scope string) bool { return slices.Contains(p.scopes, scope) }

// admin reports the coordinator.admin scope.
func (p principal) admin() bool { return p.may("coordinator.admin") }

// call is one Coordinator request being handled under w.mu.
type call struct {
	rw    http.ResponseWriter
	r     *http.Request
	reqID string
	p     principal
	// body is the parsed JSON body: nil when absent, else a map, slice,
	// string, json.Number, bool or jsonNull.
	body    any
	hasBody bool
}

// jsonNull marks an explicit JSON null body.
type jsonNull struct{}

// coordinatorHandler wraps a route body with what every Coordinator route
// does first, in the servers' order: request id, authentication, body
// parsing, path parameter validation. The whole request runs under w.mu.
func (w *world) coordinatorHandler(h func(*call)) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		c := &call{rw: rw, r: r, reqID: coordinatorRequestID(r)}
		// Read the body before taking the lock so a slow client cannot stall
		// the world.
		raw, readErr := readLimited(r.Body, coordinatorBodyLimit)

		w.mu.Lock()
		defer w.mu.Unlock()
		// The Date header comes from the Coordinator's own clock, as a real
		// server's does.
		rw.Header().Set("Date", w.now().UTC().Format(http.TimeFormat))
		if !w.authenticate(c) {
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if readErr != nil {
				status := http.StatusBadRequest
				if errors.Is(readErr, errBodyTooLarge) {
					status = http.StatusRequestEntityTooLarge
				}
				c.internal(status)
				return
			}
			if !c.parseBody(raw) {
				return
			}
		}
		for _, name := range []string{"id", "sid"} {
			if v := r.PathValue(name); v != "" || strings.Contains(r.Pattern, "{"+name+"}") {
				if !idPattern.MatchString(v) {
					c.fail(http.StatusBadRequest, "invalid_params")
					return
				}
			}
		}
		h(c)
	}
}

// coordinatorRequestID adopts an X-Request-Id that matches the id pattern,
// else makes a UUIDv4 (PROTOCOL §4.1).
func coordinatorRequestID(r *http.Request) string {
	if id := r.Header.Get(wire.HeaderRequestID); idPattern.MatchString(id) {
		return id
	}
	return uuid.NewString()
}

var errBodyTooLarge = errors.New("body too large")

func readLimited(body io.Reader, limit int64) ([]byte, error) {
	if body == nil {
		return nil, nil
	}
	raw, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > limit {
		return nil, errBodyTooLarge
	}
	return raw, nil
}

// parseBody applies Fastify's content-type parsing: JSON (rejecting an empty
// or malformed body), text/plain as a string, anything else 415.
func (c *call) parseBody(raw []byte) bool {
	ct := c.r.Header.Get("Content-Type")
	if ct == "" {
		if len(raw) == 0 {
			return true
		}
		c.internal(http.StatusUnsupportedMediaType)
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		c.internal(http.StatusUnsupportedMediaType)
		return false
	}
	switch {
	case mt == "application/json":
		if len(bytes.TrimSpace(raw)) == 0 {
			c.internal(http.StatusBadRequest)
			return false
		}
		v, err := decodeJSON(raw)
		if err != nil {
			c.internal(http.StatusBadRequest)
			return false
		}
		c.body, c.hasBody = v, true
	case mt == "text/plain":
		c.body, c.hasBody = string(raw), true
	default:
		c.internal(http.StatusUnsupportedMediaType)
		return false
	}
	return true
}

// decodeJSON parses one JSON value the way JSON.parse plus Fastify's
// prototype-poisoning guard do: numbers kept exact, "__proto__" keys refused.
func decodeJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	if poisoned(v) {
		return nil, errors.New("forbidden prototype property")
	}
	if v == nil {
		return jsonNull{}, nil
	}
	return v, nil
}

func poisoned(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if k == "__proto__" || poisoned(e) {
				return true
			}
			if k == "constructor" {
				if m, ok := e.(map[string]any); ok {
					if _, bad := m["prototype"]; bad {
						return true
					}
				}
			}
		}
	case []any:
		for _, e := range t {
			if poisoned(e) {
				return true
			}
		}
	}
	return false
}

// lifecycleClaims is what the Coordinator reads from a bearer.
type lifecycleClaims struct {
	jwt.RegisteredClaims
	ZoneID   string `json:"zone_id"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	SID      string `json:"sid"`
	Use      string `json:"use"`
}

// authenticate runs the authentication pipeline of PROTOCOL §4.1 and
// answers the request itself on failure.
func (w *world) authenticate(c *call) bool {
	h := c.r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	tok = strings.TrimSpace(tok)
	if !ok || tok == "" || len(tok) > bearerMaxLen {
		c.fail(http.StatusUnauthorized, "missing_token")
		return false
	}
	var unverified lifecycleClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &unverified); err != nil ||
		!idPattern.MatchString(unverified.ZoneID) {
		c.fail(http.StatusUnauthorized, "invalid_token")
		return false
	}
	var claims lifecycleClaims
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithIssuer(w.issuer),
		jwt.WithAudience(w.issuer),
		jwt.WithLeeway(60*time.Second),
		jwt.WithTimeFunc(w.now),
	)
	_, err := parser.ParseWithClaims(tok, &claims, func(t *jwt.Token) (any, error) {
		// Only this zone has a JWKS; any other zone's keys cannot be found.
		if unverified.ZoneID != w.zone {
			return nil, errors.New("unknown zone")
		}
		kid, _ := t.Header["kid"].(string)
		for _, k := range w.keys {
			if k.kid == kid {
				return &k.private.PublicKey, nil
			}
		}
		return nil, errors.New("unknown key")
	})
	if err != nil || claims.ZoneID != unverified.ZoneID || claims.Use != wire.UseSession || claims.Subject == "" {
		c.fail(http.StatusUnauthorized, "invalid_token")
		return false
	}
	scopes := strings.Fields(claims.Scope)
	if !slices.Contains(scopes, wire.ScopeLifecycle) {
		c.fail(http.StatusForbidden, "missing_scope")
		return false
	}
	if z := c.r.PathValue("zone"); strings.Contains(c.r.Pattern, "{zone}") && z != claims.ZoneID {
		c.fail(http.StatusForbidden, "zone_mismatch")
		return false
	}
	if claims.ClientID == "" {
		c.fail(http.StatusUnauthorized, "invalid_token")
		return false
	}
	app := w.apps[claims.ClientID]
	if app == nil || app.expired || (claims.SID != "" && w.activeRecord(claims.SID) == nil) {
		c.fail(http.StatusUnauthorized, "identity_revoked")
		return false
	}
	c.p = principal{clientID: claims.ClientID, subject: claims.Subject, sid: claims.SID, scopes: scopes}
	return true
}

// unknownRoute is Fastify's 404 for a route that does not exist, reached
// after authentication.
func (w *world) unknownRoute(c *call) {
	writeJSON(c.rw, http.StatusNotFound, map[string]any{
		"message":    "Route " + c.r.Method + ":" + c.r.URL.Path + " not found",
		"error":      "Not Found",
		"statusCode": http.StatusNotFound,
	})
}

// writeJSON writes v as the Coordinator does (no HTML escaping).
func writeJSON(rw http.ResponseWriter, status int, v any) {
	rw.Header().Set("Content-Type", "application/json; charset=utf-8")
	rw.WriteHeader(status)
	_, _ = rw.Write(mustJSON(v))
}

// mustJSON encodes v without HTML escaping; v is always encodable here.
func mustJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// fail answers with error shape 1.
func (c *call) fail(status int, code string) {
	writeJSON(c.rw, status, wire.ErrorBody{Error: code})
}

// failWith answers with error shape 1 plus a message or detail.
func (c *call) failWith(status int, body wire.ErrorBody) {
	writeJSON(c.rw, status, body)
}

// invalidBody answers with error shape 2 (zod validation failure).
func (c *call) invalidBody(issues []wire.Issue) {
	writeJSON(c.rw, http.StatusBadRequest, wire.ErrorBody{
		Error:            "invalid_body",
		ErrorDescription: "Request body failed validation",
		RequestID:        c.reqID,
		Details:          &wire.IssueDetails{Issues: issues},
	})
}

// internal answers with error shape 4.
func (c *call) internal(status int) {
	writeJSON(c.rw, status, wire.ErrorBody{
		Error:            "internal_error",
		ErrorDescription: "The service failed to process the request",
		RequestID:        c.reqID,
	})
}

// idemFail answers with error shape 3.
func (c *call) idemFail(code, message string) {
	writeJSON(c.rw, http.StatusBadRequest, wire.ErrorBody{Error: code, Message: message, RequestIDSnake: c.reqID})
}

// owns reports whether the caller may act on objects of application app.
func (c *call) owns(app string) bool {
	return c.p.clientID == app || c.p.admin()
}
