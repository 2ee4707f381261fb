package caracaltest

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/caracal-go/caracal/internal/wire"
)

// The Coordinator validates bodies with zod; these helpers reproduce its
// rules and its default messages closely enough for clients, which only read
// the issue paths.

// schema collects zod issues while reading one JSON object.
type schema struct {
	obj    map[string]any
	issues []wire.Issue
}

// newSchema starts validating body as an object; a non-object body yields
// the one root issue zod reports.
func newSchema(body any) *schema {
	s := &schema{}
	switch t := body.(type) {
	case map[string]any:
		s.obj = t
	case nil:
		s.add("Required")
	default:
		s.add(fmt.Sprintf("Expected object, received %s", jsType(body)))
	}
	return s
}

func (s *schema) ok() bool { return len(s.issues) == 0 }

func (s *schema) add(msg string, path ...string) {
	if path == nil {
		path = []string{}
	}
	s.issues = append(s.issues, wire.Issue{Path: path, Message: msg})
}

// jsType names a decoded JSON value as zod's "received" does.
func jsType(v any) string {
	switch v.(type) {
	case nil:
		return "undefined"
	case jsonNull:
		return "null"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "unknown"
}

// field returns the key's value: (nil, false) when absent; an explicit null
// is returned as jsonNull.
func (s *schema) field(key string) (any, bool) {
	if s.obj == nil {
		return nil, false
	}
	v, ok := s.obj[key]
	if ok && v == nil {
		return jsonNull{}, true
	}
	return v, ok
}

// str reads a string field. required: absent is an issue; nullable: null is
// allowed (returned as present=false); minLen/maxLen apply to the value
// after trim when trim is set.
func (s *schema) str(key string, required, nullable bool, minLen, maxLen int) (string, bool) {
	v, ok := s.field(key)
	if !ok {
		if required && s.obj != nil {
			s.add("Required", key)
		}
		return "", false
	}
	if _, isNull := v.(jsonNull); isNull && nullable {
		return "", false
	}
	str, isStr := v.(string)
	if !isStr {
		s.add(fmt.Sprintf("Expected string, received %s", jsType(v)), key)
		return "", false
	}
	s.checkLen(str, minLen, maxLen, key)
	return str, true
}

func (s *schema) checkLen(str string, minLen, maxLen int, path ...string) {
	n := jsLength(str)
	if minLen > 0 && n < minLen {
		s.add(fmt.Sprintf("String must contain at least %d character(s)", minLen), path...)
	}
	if maxLen > 0 && n > maxLen {
		s.add(fmt.Sprintf("String must contain at most %d character(s)", maxLen), path...)
	}
}

// jsLength is the length of str as JavaScript counts it, in UTF-16 code
// units, which is what the Coordinator's length limits apply to: a
// character outside the Basic Multilingual Plane counts twice.
func jsLength(str string) int {
	n := 0
	for _, r := range str {
		n += utf16.RuneLen(r)
	}
	return n
}

// enum reads a string enum field.
func (s *schema) enum(key string, values ...string) (string, bool) {
	v, ok := s.field(key)
	if !ok {
		return "", false
	}
	str, isStr := v.(string)
	for _, allowed := range values {
		if isStr && str == allowed {
			return str, true
		}
	}
	quoted := make([]string, len(values))
	for i, a := range values {
		quoted[i] = "'" + a + "'"
	}
	if isStr {
		s.add(fmt.Sprintf("Invalid enum value. Expected %s, received '%s'", strings.Join(quoted, " | "), str), key)
	} else {
		s.add(fmt.Sprintf("Expected %s, received %s", strings.Join(quoted, " | "), jsType(v)), key)
	}
	return "", false
}

// integer reads an integer field within [lo, hi] (hi 0: unbounded).
func (s *schema) integer(key string, required bool, lo, hi float64) (float64, bool) {
	v, ok := s.field(key)
	if !ok {
		if required && s.obj != nil {
			s.add("Required", key)
		}
		return 0, false
	}
	f, issue := checkInt(v, lo, hi)
	if issue != "" {
		s.add(issue, key)
		return 0, false
	}
	return f, true
}

// checkInt validates a decoded JSON value as a zod int with bounds.
func checkInt(v any, lo, hi float64) (float64, string) {
	n, isNum := v.(json.Number)
	if !isNum {
		return 0, fmt.Sprintf("Expected number, received %s", jsType(v))
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) {
		return 0, "Expected number, received number"
	}
	if f != math.Trunc(f) {
		return 0, "Expected integer, received float"
	}
	if f < lo {
		return 0, fmt.Sprintf("Number must be greater than or equal to %v", lo)
	}
	if hi > 0 && f > hi {
		return 0, fmt.Sprintf("Number must be less than or equal to %v", hi)
	}
	return f, ""
}

// object reads a JSON object field (z.record).
func (s *schema) object(key string) (map[string]any, bool) {
	v, ok := s.field(key)
	if !ok {
		return nil, false
	}
	m, isObj := v.(map[string]any)
	if !isObj {
		s.add(fmt.Sprintf("Expected object, received %s", jsType(v)), key)
		return nil, false
	}
	return m, true
}

// strArray reads an array of strings, each trimmed when trim is set and
// checked against minLen/maxLen; maxItems 0 is unbounded.
func (s *schema) strArray(key string, maxItems, minLen, maxLen int, trim bool) ([]string, bool) {
	v, ok := s.field(key)
	if !ok {
		return nil, false
	}
	arr, isArr := v.([]any)
	if !isArr {
		s.add(fmt.Sprintf("Expected array, received %s", jsType(v)), key)
		return nil, false
	}
	if maxItems > 0 && len(arr) > maxItems {
		s.add(fmt.Sprintf("Array must contain at most %d element(s)", maxItems), key)
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		str, isStr := e.(string)
		if !isStr {
			if e == nil {
				e = jsonNull{}
			}
			s.add(fmt.Sprintf("Expected string, received %s", jsType(e)), key, fmt.Sprint(i))
			continue
		}
		if trim {
			str = strings.TrimSpace(str)
		}
		s.checkLen(str, minLen, maxLen, key, fmt.Sprint(i))
		out = append(out, str)
	}
	return out, true
}

// isoDatetime is zod's default .datetime(): UTC with Z, optional fraction.
var isoDatetime = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$`)

// parseISODatetime parses an ISO-8601 UTC datetime as zod accepts it.
func parseISODatetime(str string) (time.Time, bool) {
	if !isoDatetime.MatchString(str) {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, str)
	return t, err == nil
}

// datetime reads an ISO-8601 datetime field.
func (s *schema) datetime(key string) (time.Time, bool) {
	str, ok := s.str(key, false, false, 0, 0)
	if !ok {
		return time.Time{}, false
	}
	t, valid := parseISODatetime(str)
	if !valid {
		s.add("Invalid datetime", key)
		return time.Time{}, false
	}
	return t, true
}

// startRequest is a validated start-session body (PROTOCOL §4.3).
type startRequest struct {
	applicationID  string
	subjectSession string // "" when absent
	parentID       string
	parentGiven    bool // parent_id sent as a string (possibly "")
	lifecycle      string
	labels         []string
	ttlSeconds     int // 0 when absent
	authority      string
	inheritEdgeID  string
	metadata       map[string]any
}

// parseStartRequest validates a start-session body.
func parseStartRequest(body any) (startRequest, []wire.Issue) {
	s := newSchema(body)
	var req startRequest
	req.applicationID, _ = s.str("application_id", true, false, 1, 0)
	req.subjectSession, _ = s.str("subject_session_id", false, false, 1, 0)
	req.parentID, req.parentGiven = s.str("parent_id", false, true, 0, 0)
	req.lifecycle, _ = s.enum("lifecycle", wire.LifecycleTask, wire.LifecycleService)
	req.labels, _ = s.strArray("labels", 32, 1, 64, true)
	ttl, hasTTL := s.integer("ttl_seconds", false, 1, 86400)
	req.authority, _ = s.enum("parent_authority", wire.AuthorityInherit, wire.AuthorityNone)
	req.inheritEdgeID, _ = s.str("inherit_parent_edge_id", false, false, 1, 0)
	req.metadata, _ = s.object("metadata")
	if !s.ok() {
		return req, s.issues
	}
	if req.lifecycle == "" {
		req.lifecycle = wire.LifecycleTask
	}
	if req.authority == "" {
		req.authority = wire.AuthorityInherit
	}
	if req.labels == nil {
		req.labels = []string{}
	}
	if req.metadata == nil {
		req.metadata = map[string]any{}
	}
	if hasTTL {
		if req.lifecycle == wire.LifecycleService {
			s.add("service sessions are lease-renewed and do not accept ttl_seconds", "ttl_seconds")
			return req, s.issues
		}
		req.ttlSeconds = int(ttl)
	}
	return req, nil
}

// heartbeatRequest is a validated heartbeat body (PROTOCOL §4.5).
type heartbeatRequest struct {
	generation    float64
	hasGeneration bool
	status        string
	serviceID     string
	// activeInvocations is echoed as the number sent, which the schema
	// bounds only below.
	activeInvocations float64
}

// parseHeartbeatRequest validates a heartbeat body. A missing body or
// lease_generation is not a schema failure: the live Coordinator answers it
// 400 lease_generation_required (PROTOCOL "Verified live", which overrides
// §4.5's invalid_body), so the handler decides.
func parseHeartbeatRequest(body any) (heartbeatRequest, []wire.Issue) {
	if body == nil {
		return heartbeatRequest{status: "healthy"}, nil
	}
	s := newSchema(body)
	var req heartbeatRequest
	req.generation, req.hasGeneration = s.integer("lease_generation", false, 1, 0)
	req.status, _ = s.enum("status", "starting", "healthy", "degraded", "unhealthy")
	req.serviceID, _ = s.str("service_id", false, false, 1, 0)
	req.activeInvocations, _ = s.integer("active_invocations", false, 0, 0)
	_, _ = s.object("metadata")
	if !s.ok() {
		return req, s.issues
	}
	if req.status == "" {
		req.status = "healthy"
	}
	return req, nil
}

// delegationRequest is a validated delegation-create body (PROTOCOL §4.7),
// constraints not yet checked.
type delegationRequest struct {
	source, target     string
	issuer, receiver   string
	parentEdgeID       string
	resourceID         string // "" when absent or null
	scopes             []string
	constraints        any // raw value; nil when absent
	constraintsJSON    any
	hasConstraints     bool
	hasConstraintsJSON bool
	expiresAt          time.Time
	hasExpiresAt       bool
	ttlSeconds         int
}

// parseDelegationRequest validates the top-level delegation body.
func parseDelegationRequest(body any) (delegationRequest, []wire.Issue) {
	s := newSchema(body)
	var req delegationRequest
	req.source, _ = s.str("source_session_id", true, false, 1, 0)
	req.target, _ = s.str("target_session_id", true, false, 1, 0)
	req.issuer, _ = s.str("issuer_application_id", true, false, 1, 0)
	req.receiver, _ = s.str("receiver_application_id", true, false, 1, 0)
	req.parentEdgeID, _ = s.str("parent_edge_id", false, false, 1, 0)
	req.resourceID, _ = s.str("resource_id", false, true, 0, 0)
	req.scopes, _ = s.strArray("scopes", 0, 1, 0, false)
	req.constraints, req.hasConstraints = s.field("constraints")
	req.constraintsJSON, req.hasConstraintsJSON = s.field("constraints_json")
	req.expiresAt, req.hasExpiresAt = s.datetime("expires_at")
	ttl, _ := s.integer("ttl_seconds", false, 1, 86400)
	req.ttlSeconds = int(ttl)
	if !s.ok() {
		return req, s.issues
	}
	if req.scopes == nil {
		req.scopes = []string{}
	}
	return req, nil
}

// constraintKeys are the keys of the strict constraint object (§6.4).
var constraintKeys = []string{"resources", "max_hops", "max_depth", "ttl_seconds", "budget",
	"policy_approved", "expires_at", "broad_reason"}

// parseConstraints merges constraints_json under constraints and validates
// the result strictly (§4.7 rows 2-4). It returns the error code on failure.
func parseConstraints(req delegationRequest) (wire.Constraints, string) {
	merged := map[string]any{}
	for _, part := range []struct {
		v       any
		present bool
	}{{req.constraintsJSON, req.hasConstraintsJSON}, {req.constraints, req.hasConstraints}} {
		if !part.present {
			continue
		}
		m, ok := part.v.(map[string]any)
		if !ok {
			return wire.Constraints{}, "invalid_delegation_constraint"
		}
		for k, v := range m {
			if !slices.Contains(constraintKeys, k) {
				return wire.Constraints{}, "invalid_delegation_constraint"
			}
			merged[k] = v
		}
	}
	var c wire.Constraints
	intField := func(key string, lo, hi float64, dst *int) string {
		v, ok := merged[key]
		if !ok || v == nil {
			return ""
		}
		f, issue := checkInt(v, lo, hi)
		if issue != "" {
			return "invalid_" + key
		}
		*dst = int(f)
		return ""
	}
	if v, ok := merged["resources"]; ok && v != nil {
		arr, isArr := v.([]any)
		if !isArr || len(arr) > 64 {
			return c, "invalid_resources"
		}
		for _, e := range arr {
			str, isStr := e.(string)
			if !isStr || strings.TrimSpace(str) == "" {
				return c, "invalid_resources"
			}
			c.Resources = append(c.Resources, str)
		}
	}
	for _, f := range []struct {
		key    string
		lo, hi float64
		dst    *int
	}{
		{"max_hops", 1, 10, &c.MaxHops},
		{"max_depth", 1, 10, &c.MaxDepth},
		{"ttl_seconds", 1, 86400, &c.TTLSeconds},
		{"budget", 1, 64, &c.Budget},
	} {
		if code := intField(f.key, f.lo, f.hi, f.dst); code != "" {
			return c, code
		}
	}
	if v, ok := merged["policy_approved"]; ok && v != nil {
		b, isBool := v.(bool)
		if !isBool {
			return c, "invalid_policy_approved"
		}
		c.PolicyApproved = &b
	}
	if v, ok := merged["expires_at"]; ok && v != nil {
		str, isStr := v.(string)
		if !isStr {
			return c, "invalid_expires_at"
		}
		if _, valid := parseISODatetime(str); !valid {
			return c, "invalid_expires_at"
		}
		c.ExpiresAt = str
	}
	if v, ok := merged["broad_reason"]; ok && v != nil {
		str, isStr := v.(string)
		if !isStr || str == "" || jsLength(str) > 256 {
			return c, "invalid_broad_reason"
		}
		c.BroadReason = str
	}
	if c.MaxHops != 0 && c.MaxDepth != 0 && c.MaxHops != c.MaxDepth {
		return c, "invalid_max_hops"
	}
	if c.MaxHops == 0 {
		c.MaxHops = c.MaxDepth
	}
	if c.TTLSeconds == 0 {
		c.TTLSeconds = req.ttlSeconds
	}
	return c, ""
}
