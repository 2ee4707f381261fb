package jwks

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caracal-go/caracal/internal/wire"
)

// Limits of a resource token a verifier accepts.
const (
	// Leeway is the clock skew allowed on exp and iat, as the Caracal
	// verifiers allow.
	Leeway = 60 * time.Second
	// MaxHops is the platform's delegation hop maximum.
	MaxHops = 10
	// MaxTokenBytes caps a bearer before any parsing (the Gateway's cap).
	MaxTokenBytes = 4096
)

// Error codes, as the Caracal resource-server adapters name them.
const (
	CodeInvalidToken      = "invalid_token"
	CodeInvalidZone       = "invalid_zone"
	CodeInsufficientScope = "insufficient_scope"
	CodeHopCountExceeded  = "hop_count_exceeded"
)

// Error is a verification failure. Description never contains the token.
type Error struct {
	Code        string
	Description string
	Err         error
}

// Error implements error.
func (e *Error) Error() string { return "caracal: " + e.Code + ": " + e.Description }

// Unwrap returns the cause, if any.
func (e *Error) Unwrap() error { return e.Err }

func fail(code, desc string, err error) *Error {
	return &Error{Code: code, Description: desc, Err: err}
}

// ChainLink is one element of the delegation_chain claim.
type ChainLink struct {
	ApplicationID    string `json:"application_id"`
	AgentSessionID   string `json:"agent_session_id,omitempty"`
	DelegationEdgeID string `json:"delegation_edge_id,omitempty"`
}

// Audience is the aud claim: a string or an array of strings.
type Audience []string

// UnmarshalJSON accepts both JSON forms of aud.
func (a *Audience) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = Audience{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	*a = l
	return nil
}

// Claims is the Caracal claim set (PROTOCOL §3.5). Times are Unix seconds.
type Claims struct {
	Issuer               string      `json:"iss"`
	Subject              string      `json:"sub"`
	Audience             Audience    `json:"aud"`
	ExpiresAt            *float64    `json:"exp"`
	IssuedAt             *float64    `json:"iat"`
	NotBefore            *float64    `json:"nbf,omitempty"`
	ID                   string      `json:"jti"`
	ZoneID               string      `json:"zone_id"`
	ClientID             string      `json:"client_id"`
	Scope                string      `json:"scope,omitempty"`
	SID                  string      `json:"sid"`
	RootSID              string      `json:"root_sid"`
	Use                  string      `json:"use"`
	SubType              string      `json:"sub_type"`
	Target               []string    `json:"target,omitempty"`
	AgentSessionID       string      `json:"agent_session_id,omitempty"`
	DelegationEdgeID     string      `json:"delegation_edge_id,omitempty"`
	SourceSessionID      string      `json:"source_session_id,omitempty"`
	TargetSessionID      string      `json:"target_session_id,omitempty"`
	DelegationPath       []string    `json:"delegation_path,omitempty"`
	DelegationChain      []ChainLink `json:"delegation_chain,omitempty"`
	HopCount             int         `json:"hop_count,omitempty"`
	DelegationGraphEpoch int64       `json:"delegation_graph_epoch,omitempty"`
}

// Expiry returns exp as a time (zero if absent).
func (c *Claims) Expiry() time.Time { return unix(c.ExpiresAt) }

// maxUnix bounds the time claims a token may carry. Past it, the
// conversion to int64 seconds and time.Unix overflow and wrap around, and a
// token not valid before the far future would pass as one valid since the
// far past.
const maxUnix = 1 << 62

// inRange reports whether an absent or present time claim is within
// ±maxUnix seconds.
func inRange(f *float64) bool { return f == nil || -maxUnix <= *f && *f <= maxUnix }

func unix(f *float64) time.Time {
	if f == nil {
		return time.Time{}
	}
	sec := int64(*f)
	return time.Unix(sec, int64((*f-float64(sec))*1e9))
}

// Expect is what a verifier requires of a token.
type Expect struct {
	// Issuer is the STS ISSUER_URL (required).
	Issuer string
	// Audience is the resource identifier the server protects (required).
	Audience string
	// Zone is the configured zone (required).
	Zone string
	// Uses are the accepted token classes; empty means resource only.
	// "gateway" is never accepted.
	Uses []string
	// SessionApplications are the applications (client_id) whose use=session
	// tokens are accepted; required when Uses holds "session". A lifecycle
	// token is not minted for a resource (its audience is the STS issuer),
	// so it is accepted only from applications named here.
	SessionApplications []string
	// Scopes the token must all carry.
	Scopes []string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// CacheSize is how many verified tokens are remembered, so that the
	// same token presented again skips the signature check: 0 means
	// DefaultCacheSize, a negative value turns the cache off.
	CacheSize int
}

// Verifier checks Caracal tokens for one resource. Safe for concurrent use.
type Verifier struct {
	keys  *Keys
	exp   Expect
	cache *tokenCache // nil when off
}

// NewVerifier returns a verifier over keys.
func NewVerifier(keys *Keys, exp Expect) (*Verifier, error) {
	switch {
	case exp.Issuer == "":
		return nil, errors.New("caracal: token verification needs the STS issuer")
	case exp.Audience == "":
		return nil, errors.New("caracal: token verification needs the resource identifier")
	case exp.Zone == "":
		return nil, errors.New("caracal: token verification needs the zone")
	}
	if len(exp.Uses) == 0 {
		exp.Uses = []string{wire.UseResource}
	}
	for _, u := range exp.Uses {
		if u != wire.UseResource && u != wire.UseSession {
			return nil, fmt.Errorf("caracal: token class %q cannot be accepted by a resource server", u)
		}
	}
	if slices.Contains(exp.Uses, wire.UseSession) && len(exp.SessionApplications) == 0 {
		return nil, errors.New("caracal: accepting session tokens needs the applications they may come from")
	}
	exp.SessionApplications = slices.Clone(exp.SessionApplications)
	exp.Uses = slices.Clone(exp.Uses)
	exp.Scopes = wire.NormalizeScopes(exp.Scopes)
	if exp.Now == nil {
		exp.Now = time.Now
	}
	size := exp.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	return &Verifier{keys: keys, exp: exp, cache: newTokenCache(size)}, nil
}

// header is the JOSE header; only alg and kid matter, and crit must be
// absent: a token naming extensions its recipient must understand is
// refused by one that understands none (RFC 7515 §4.1.11).
type header struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Crit json.RawMessage `json:"crit"`
}

var b64 = base64.RawURLEncoding.Strict()

// Verify checks the signature and the claims of token and returns them.
// The claims may be shared with the verifier's cache: treat them as
// read-only.
//
// A token verified before is answered from the cache when the key that
// signed it is still the zone's key under its key id; its claims are checked
// again, since the clock has moved.
//
// The compact form is split and decoded here, with the algorithm pinned to
// ES256 before any key is looked up; the signature itself is checked by
// jwt/v5's ES256 method. Going through jwt.Parser instead would add a map
// decode of the header and a second pass over the claims for every request.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if len(token) > MaxTokenBytes {
		return nil, fail(CodeInvalidToken, "bearer token too large", nil)
	}
	if v.cache != nil {
		if e, ok := v.cache.get(token); ok {
			if claims, hit, err := v.fromCache(ctx, token, e); hit {
				return claims, err
			}
		}
	}
	dot1 := strings.IndexByte(token, '.')
	dot2 := strings.LastIndexByte(token, '.')
	if dot1 <= 0 || dot2 <= dot1+1 || strings.IndexByte(token[dot1+1:dot2], '.') >= 0 || !compact(token) {
		return nil, fail(CodeInvalidToken, "malformed token", nil)
	}
	// One buffer serves the three segments: each is decoded after the
	// previous one is no longer needed.
	buf := make([]byte, b64.DecodedLen(dot2-dot1-1))
	if b64.DecodedLen(dot1) > len(buf) || b64.DecodedLen(len(token)-dot2-1) > len(buf) {
		return nil, fail(CodeInvalidToken, "malformed token", nil)
	}
	n, err := b64.Decode(buf, []byte(token[:dot1]))
	if err != nil {
		return nil, fail(CodeInvalidToken, "malformed token", err)
	}
	var h header
	if err := json.Unmarshal(buf[:n], &h); err != nil {
		return nil, fail(CodeInvalidToken, "malformed token", err)
	}
	if h.Alg != "ES256" {
		return nil, fail(CodeInvalidToken, "bad signature or algorithm", nil)
	}
	if h.Crit != nil {
		return nil, fail(CodeInvalidToken, "unsupported critical header", nil)
	}
	if h.Kid == "" {
		return nil, fail(CodeInvalidToken, "token has no key id", nil)
	}
	key, err := v.keys.Key(ctx, h.Kid)
	if err != nil {
		if errors.Is(err, ErrUnknownKey) {
			return nil, fail(CodeInvalidToken, "unknown signing key", err)
		}
		return nil, fail(CodeInvalidToken, "signing key unavailable", err)
	}
	n, err = b64.Decode(buf, []byte(token[dot2+1:]))
	if err != nil || n != 64 {
		return nil, fail(CodeInvalidToken, "bad signature or algorithm", err)
	}
	if err := jwt.SigningMethodES256.Verify(token[:dot2], buf[:n], key); err != nil {
		return nil, fail(CodeInvalidToken, "bad signature or algorithm", err)
	}
	n, err = b64.Decode(buf, []byte(token[dot1+1:dot2]))
	if err != nil {
		return nil, fail(CodeInvalidToken, "malformed token", err)
	}
	claims := new(Claims)
	if err := json.Unmarshal(buf[:n], claims); err != nil {
		return nil, fail(CodeInvalidToken, "malformed token", err)
	}
	now := v.exp.Now()
	if err := v.check(claims, now); err != nil {
		return nil, err
	}
	if v.cache != nil {
		v.cache.put(token, verified{claims: claims, kid: h.Kid, key: key, until: claims.Expiry().Add(Leeway)}, now)
	}
	return claims, nil
}

// compact reports whether token holds only the base64url alphabet and dots.
// The decoder skips CR and LF, so without this check a signature with a
// line break in it would verify as the same token.
func compact(token string) bool {
	for i := 0; i < len(token); i++ {
		switch b := token[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '-', b == '_', b == '.':
		default:
			return false
		}
	}
	return true
}

// fromCache answers a token found in the cache. hit is false when the key
// that signed it is no longer the zone's key under its key id (rotated, or
// the key set cannot be read): the caller then verifies it from scratch,
// which reports why it fails.
func (v *Verifier) fromCache(ctx context.Context, token string, e verified) (_ *Claims, hit bool, _ error) {
	key, err := v.keys.Key(ctx, e.kid)
	// The key set hands out the same pointer until it is refetched; Equal
	// (which allocates to compare the coordinates) is needed only after.
	if err != nil || key != e.key && !key.Equal(e.key) {
		v.cache.drop(token)
		return nil, false, nil
	}
	if err := v.check(e.claims, v.exp.Now()); err != nil {
		v.cache.drop(token)
		return nil, true, err
	}
	return e.claims, true, nil
}

// check applies the Caracal claim rules jwt/v5 does not know.
func (v *Verifier) check(c *Claims, now time.Time) error {
	if c.ExpiresAt == nil || c.IssuedAt == nil || c.ID == "" || c.Subject == "" || c.SID == "" || c.RootSID == "" ||
		c.ClientID == "" || c.Use == "" || c.SubType == "" || c.ZoneID == "" {
		return fail(CodeInvalidToken, "required claim missing", nil)
	}
	if !inRange(c.ExpiresAt) || !inRange(c.IssuedAt) || !inRange(c.NotBefore) {
		return fail(CodeInvalidToken, "time claim out of range", nil)
	}
	if now.Sub(c.Expiry()) > Leeway {
		return fail(CodeInvalidToken, "token expired", nil)
	}
	if unix(c.IssuedAt).Sub(now) > Leeway {
		return fail(CodeInvalidToken, "token issued in the future", nil)
	}
	if c.NotBefore != nil && unix(c.NotBefore).Sub(now) > Leeway {
		return fail(CodeInvalidToken, "token not valid yet", nil)
	}
	if c.Issuer != v.exp.Issuer {
		return fail(CodeInvalidToken, "wrong issuer", nil)
	}
	if !slices.Contains(v.exp.Uses, c.Use) {
		return fail(CodeInvalidToken, "token class "+c.Use+" is not accepted here", nil)
	}
	// A lifecycle token's audience is the STS issuer (PROTOCOL §3.5).
	if !slices.Contains(c.Audience, v.exp.Audience) &&
		(c.Use != wire.UseSession || !slices.Contains(c.Audience, v.exp.Issuer)) {
		return fail(CodeInvalidToken, "wrong audience", nil)
	}
	if c.Use == wire.UseSession && !slices.Contains(v.exp.SessionApplications, c.ClientID) {
		return fail(CodeInvalidToken, "session tokens of application "+c.ClientID+" are not accepted here", nil)
	}
	if c.SubType != "user" && c.SubType != "application" {
		return fail(CodeInvalidToken, "unknown subject type", nil)
	}
	if c.ZoneID != v.exp.Zone {
		return fail(CodeInvalidZone, "token is for another zone", nil)
	}
	if c.HopCount < 0 || c.HopCount > MaxHops || len(c.DelegationPath) > MaxHops {
		return fail(CodeHopCountExceeded, "delegation hop count exceeds the maximum", nil)
	}
	for _, s := range v.exp.Scopes {
		if !hasScope(c.Scope, s) {
			return fail(CodeInsufficientScope, "token lacks scope "+s, nil)
		}
	}
	return nil
}

// hasScope reports whether the space-separated scope claim holds s.
func hasScope(scope, s string) bool {
	for f := range strings.FieldsSeq(scope) {
		if f == s {
			return true
		}
	}
	return false
}
