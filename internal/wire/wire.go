// Package wire holds the typed request and response bodies of the Caracal v1
// protocol (STS, Coordinator, Gateway), shared by the SDK and caracaltest.
//
// Field names and JSON keys follow PROTOCOL.md exactly. Nothing here performs
// I/O; encoding helpers are pure.
package wire

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Protocol constants.
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeIDToken       = "urn:ietf:params:oauth:token-type:id_token"
	ScopeLifecycle         = "agent:lifecycle"

	UseSession  = "session"
	UseGateway  = "gateway"
	UseResource = "resource"

	HeaderResource        = "X-Caracal-Resource"
	HeaderRequestID       = "X-Request-Id"
	HeaderIdempotencyKey  = "Idempotency-Key"
	HeaderIdempotencyKind = "Idempotency-Key-Kind"
	HeaderReplayed        = "Idempotency-Replayed"
	HeaderTokenExpiresIn  = "X-Caracal-Token-Expires-In"

	LifecycleTask    = "task"
	LifecycleService = "service"

	AuthorityInherit = "inherit"
	AuthorityNone    = "none"

	StatusActive     = "active"
	StatusSuspended  = "suspended"
	StatusTerminated = "terminated"
	StatusExpired    = "expired"
	StatusRevoked    = "revoked"
)

// TokenRequest is the form of POST /oauth/2/token (PROTOCOL §3.2) as the SDK
// sends it. Zero-valued fields are omitted.
type TokenRequest struct {
	ZoneID           string
	ApplicationID    string
	ClientSecret     string
	Scopes           []string
	Resources        []string
	AgentSessionID   string
	DelegationEdgeID string
	TTLSeconds       int
	ApprovalID       string
}

// grantTypeForm is GrantTypeTokenExchange escaped as a form value, once.
var grantTypeForm = url.QueryEscape(GrantTypeTokenExchange)

// Encode returns the request as the url-encoded body the STS expects:
// scopes deduplicated, sorted and space-joined; resources repeated; keys in
// the order url.Values.Encode gives them. It builds the body directly, as it
// is sent once per mandate.
func (r TokenRequest) Encode() string {
	var b strings.Builder
	b.Grow(512) // a mandate request is about 400 bytes
	escaped := func(k, v string) {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
	}
	pair := func(k, v string) { escaped(k, url.QueryEscape(v)) }
	add := func(k, v string) { // zero values are omitted
		if v != "" {
			pair(k, v)
		}
	}
	add("agent_session_id", r.AgentSessionID)
	add("application_id", r.ApplicationID)
	add("approval_id", r.ApprovalID)
	add("client_secret", r.ClientSecret)
	add("delegation_edge_id", r.DelegationEdgeID)
	escaped("grant_type", grantTypeForm)
	for _, res := range r.Resources {
		pair("resource", res)
	}
	add("scope", JoinScopes(r.Scopes))
	if r.TTLSeconds > 0 {
		add("ttl_seconds", strconv.Itoa(r.TTLSeconds))
	}
	add("zone_id", r.ZoneID)
	return b.String()
}

// JoinScopes deduplicates, sorts and space-joins scopes.
func JoinScopes(scopes []string) string {
	return strings.Join(NormalizeScopes(scopes), " ")
}

// NormalizeScopes returns the deduplicated scopes in sorted order, as a new
// slice. An element holding several space-separated scopes (the form of an
// OAuth scope parameter) counts as each of them; empty elements are dropped.
func NormalizeScopes(scopes []string) []string {
	out := make([]string, 0, len(scopes))
	seen := make(map[string]struct{}, len(scopes))
	for _, s := range scopes {
		for f := range strings.FieldsSeq(s) {
			if _, dup := seen[f]; dup {
				continue
			}
			seen[f] = struct{}{}
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

// TokenResponse is the STS success body (PROTOCOL §3.6).
type TokenResponse struct {
	AccessToken     string   `json:"access_token"`
	TokenType       string   `json:"token_type"`
	ExpiresIn       int      `json:"expires_in"`
	Scope           string   `json:"scope,omitempty"`
	IssuedTokenType string   `json:"issued_token_type"`
	TargetResources []string `json:"target_resources,omitempty"`
}

// ApprovalStatus is the body of GET /approvals/{id} (PROTOCOL §3.8).
type ApprovalStatus struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	ExpiresAt string `json:"expires_at"`
}

// Approval states.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalRejected = "rejected"
	ApprovalExpired  = "expired"
	ApprovalConsumed = "consumed"
)

// JWK is one EC public key of the STS JWKS.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	Use string `json:"use"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// JWKS is the body of GET /.well-known/jwks.json.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// StartSessionRequest is the body of POST /zones/{z}/agents (PROTOCOL §4.3).
type StartSessionRequest struct {
	ApplicationID       string          `json:"application_id"`
	SubjectSessionID    string          `json:"subject_session_id,omitempty"`
	ParentID            string          `json:"parent_id,omitempty"`
	Lifecycle           string          `json:"lifecycle,omitempty"`
	Labels              []string        `json:"labels,omitempty"`
	TTLSeconds          int             `json:"ttl_seconds,omitempty"`
	ParentAuthority     string          `json:"parent_authority,omitempty"`
	InheritParentEdgeID string          `json:"inherit_parent_edge_id,omitempty"`
	Metadata            json.RawMessage `json:"metadata,omitempty"`
}

// Session is a Coordinator session row as returned by start (PROTOCOL §4.3).
type Session struct {
	AgentSessionID           string   `json:"agent_session_id"`
	ZoneID                   string   `json:"zone_id"`
	ApplicationID            string   `json:"application_id"`
	ParentID                 *string  `json:"parent_id"`
	SubjectAuthorityRecordID string   `json:"subject_authority_record_id"`
	Lifecycle                string   `json:"lifecycle"`
	Labels                   []string `json:"labels"`
	Status                   string   `json:"status"`
	Depth                    int      `json:"depth"`
	TTLSeconds               *int     `json:"ttl_seconds"`
	StartedAt                string   `json:"started_at"`
	LastHeartbeatAt          *string  `json:"last_heartbeat_at"`
	HeartbeatDeadlineAt      *string  `json:"heartbeat_deadline_at"`
	LeaseGeneration          Int64    `json:"lease_generation"`
	DelegationEdgeID         *string  `json:"delegation_edge_id"`

	// Replayed is set by the client (not the wire body) when the answer was
	// an idempotent replay (Idempotency-Replayed: true): for a service its
	// lease_generation may be stale.
	Replayed bool `json:"-"`
}

// RetireRequest is the optional body of DELETE /zones/{z}/agents/{id}; sent
// only for service sessions.
type RetireRequest struct {
	LeaseGeneration int64 `json:"lease_generation"`
}

// HeartbeatRequest is the body of POST …/agents/{id}/heartbeat (PROTOCOL §4.5).
type HeartbeatRequest struct {
	Status            string `json:"status"`
	LeaseGeneration   int64  `json:"lease_generation"`
	ActiveInvocations *int   `json:"active_invocations,omitempty"`
}

// HeartbeatResponse is the 200 body of a heartbeat.
type HeartbeatResponse struct {
	Agent             HeartbeatAgent  `json:"agent"`
	Service           json.RawMessage `json:"service"`
	ActiveInvocations int             `json:"active_invocations"`
}

// HeartbeatAgent is the "agent" object of a heartbeat response.
type HeartbeatAgent struct {
	ID                  string `json:"id"`
	ZoneID              string `json:"zone_id"`
	ApplicationID       string `json:"application_id"`
	Status              string `json:"status"`
	LastActiveAt        string `json:"last_active_at"`
	LastHeartbeatAt     string `json:"last_heartbeat_at"`
	HeartbeatDeadlineAt string `json:"heartbeat_deadline_at"`
	LeaseGeneration     Int64  `json:"lease_generation"`
}

// LeaseResponse is the 200 body of POST …/agents/{id}/lease (PROTOCOL §4.6).
type LeaseResponse struct {
	Status              string `json:"status"`
	HeartbeatDeadlineAt string `json:"heartbeat_deadline_at"`
	LeaseGeneration     Int64  `json:"lease_generation"`
}

// Constraints is the strict delegation constraint object (PROTOCOL §6.4).
type Constraints struct {
	Resources      []string `json:"resources,omitempty"`
	MaxHops        int      `json:"max_hops,omitempty"`
	MaxDepth       int      `json:"max_depth,omitempty"`
	TTLSeconds     int      `json:"ttl_seconds,omitempty"`
	Budget         int      `json:"budget,omitempty"`
	PolicyApproved *bool    `json:"policy_approved,omitempty"`
	ExpiresAt      string   `json:"expires_at,omitempty"`
	BroadReason    string   `json:"broad_reason,omitempty"`
}

// IsZero reports whether no constraint is set.
func (c Constraints) IsZero() bool {
	return len(c.Resources) == 0 && c.MaxHops == 0 && c.MaxDepth == 0 && c.TTLSeconds == 0 &&
		c.Budget == 0 && c.PolicyApproved == nil && c.ExpiresAt == "" && c.BroadReason == ""
}

// CreateDelegationRequest is the body of POST /zones/{z}/delegations (PROTOCOL §4.7).
type CreateDelegationRequest struct {
	SourceSessionID       string       `json:"source_session_id"`
	TargetSessionID       string       `json:"target_session_id"`
	IssuerApplicationID   string       `json:"issuer_application_id"`
	ReceiverApplicationID string       `json:"receiver_application_id"`
	ParentEdgeID          string       `json:"parent_edge_id,omitempty"`
	ResourceID            string       `json:"resource_id,omitempty"`
	Scopes                []string     `json:"scopes"`
	Constraints           *Constraints `json:"constraints,omitempty"`
	ExpiresAt             string       `json:"expires_at,omitempty"`
	TTLSeconds            int          `json:"ttl_seconds,omitempty"`
}

// Delegation is a delegation edge row (create response and inbound listing).
type Delegation struct {
	DelegationEdgeID      string              `json:"delegation_edge_id,omitempty"`
	ID                    string              `json:"id,omitempty"`
	ZoneID                string              `json:"zone_id"`
	SourceSessionID       string              `json:"source_session_id"`
	TargetSessionID       string              `json:"target_session_id"`
	IssuerApplicationID   string              `json:"issuer_application_id"`
	ReceiverApplicationID string              `json:"receiver_application_id"`
	ParentEdgeID          *string             `json:"parent_edge_id"`
	ResourceID            *string             `json:"resource_id"`
	Scopes                []string            `json:"scopes"`
	ConstraintsJSON       Constraints         `json:"constraints_json"`
	Status                string              `json:"status"`
	ExpiresAt             string              `json:"expires_at"`
	EdgeVersion           Int64               `json:"edge_version"` // a string in listings (raw bigint rows)
	RevokedAt             *string             `json:"revoked_at"`
	CreatedAt             string              `json:"created_at"`
	Warnings              []string            `json:"warnings,omitempty"`
	AllowReason           []string            `json:"allow_reason,omitempty"`
	EffectiveAuthority    *EffectiveAuthority `json:"effective_authority,omitempty"`
}

// EffectiveAuthority is the effective_authority object of a delegation create.
type EffectiveAuthority struct {
	SourceSessionID       string   `json:"source_session_id"`
	TargetSessionID       string   `json:"target_session_id"`
	ParentEdgeID          *string  `json:"parent_edge_id"`
	ResourceID            *string  `json:"resource_id"`
	Resources             []string `json:"resources"`
	Scopes                []string `json:"scopes"`
	ExpiresAt             string   `json:"expires_at"`
	MaxHops               int      `json:"max_hops"`
	TTLSeconds            *int     `json:"ttl_seconds"`
	Broad                 bool     `json:"broad"`
	ParentEdgesConsidered []string `json:"parent_edges_considered"`
}

// InboundEdgeStatus is the body of GET …/delegations/inbound/{sid}/{id}.
type InboundEdgeStatus struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// InboundList is the body of GET …/delegations/inbound/{sid}.
type InboundList struct {
	Items      []Delegation `json:"items"`
	NextCursor *string      `json:"next_cursor"`
}

// ResumeResponse is the body of PATCH …/agents/{id}/resume.
type ResumeResponse struct {
	Resumed int `json:"resumed"`
}

// RevokeResponse is the body of PATCH …/delegations/{id}/revoke.
type RevokeResponse struct {
	RevokedEdges       int `json:"revoked_edges"`
	AffectedSessions   int `json:"affected_sessions"`
	TerminatedSessions int `json:"terminated_sessions"`
}

// Int64 decodes a JSON number or a JSON string holding an integer; the
// Coordinator returns lease_generation as a string on read routes (§4.10).
type Int64 int64

// UnmarshalJSON accepts 2 and "2".
func (n *Int64) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" || s == "" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return err
	}
	*n = Int64(v)
	return nil
}

// CoordinatorTime formats t as the Coordinator does: ISO-8601 UTC with
// milliseconds and Z.
func CoordinatorTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// STSTime formats t as the STS does: RFC 3339 seconds in UTC.
func STSTime(t time.Time) string {
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// ParseTime parses either timestamp form.
func ParseTime(s string) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, s)
}

// CanonicalID returns id in lower case when it is a UUID in its usual
// 36-character form, and id unchanged otherwise. A UUID names the same
// thing in either case (RFC 9562 §4), and the Coordinator answers with the
// lower-case form; comparing ids then works whichever form a caller had.
func CanonicalID(id string) string {
	if len(id) != 36 {
		return id
	}
	if _, err := uuid.Parse(id); err != nil {
		return id
	}
	return strings.ToLower(id)
}

// BearerToken reports whether s can be sent as a bearer token, in the form
// RFC 6750 §2.1 gives it: letters, digits and "-._~+/", then any "="
// padding. Anything else could split or corrupt the header that carries it.
func BearerToken(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		switch b := body[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9',
			b == '-', b == '.', b == '_', b == '~', b == '+', b == '/':
		default:
			return false
		}
	}
	return true
}

// JWTPart decodes part i (0 the header, 1 the payload) of a compact JWT
// without verifying anything: the SDK reads claims of tokens it holds, never
// to trust them. ok is false when token does not have three dot-separated
// parts or part i is not base64url (padding is tolerated).
func JWTPart(token string, i int) (b []byte, ok bool) {
	if strings.Count(token, ".") != 2 || i < 0 || i > 2 {
		return nil, false
	}
	for range i {
		token = token[strings.IndexByte(token, '.')+1:]
	}
	if end := strings.IndexByte(token, '.'); end >= 0 {
		token = token[:end]
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(token, "="))
	return b, err == nil
}

// ValidID reports whether id has the form of a Coordinator id: 1 to 128
// of A-Z, a-z, 0-9, "_", ".", "-" and ":", what the Coordinator requires of
// every id in a path (PROTOCOL Conventions). An id from outside (a server's
// answer, an inbound envelope) that does not have it could not be used in
// a later request, and would carry its other characters into errors, logs
// and onward headers.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch b := id[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '_', b == '.', b == '-', b == ':':
		default:
			return false
		}
	}
	return true
}
