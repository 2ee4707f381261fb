package caracaltest

import (
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caracal-go/caracal/internal/wire"
)

// tokenClaims is the claim set of every STS token (PROTOCOL §3.5). The
// delegation claims are present on delegated tokens only.
type tokenClaims struct {
	jwt.RegisteredClaims

	ZoneID   string   `json:"zone_id"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope,omitempty"`
	SID      string   `json:"sid"`
	RootSID  string   `json:"root_sid"`
	Use      string   `json:"use"`
	SubType  string   `json:"sub_type"`
	Target   []string `json:"target,omitempty"`

	AgentSessionID       string      `json:"agent_session_id,omitempty"`
	DelegationEdgeID     string      `json:"delegation_edge_id,omitempty"`
	SourceSessionID      string      `json:"source_session_id,omitempty"`
	TargetSessionID      string      `json:"target_session_id,omitempty"`
	DelegationPath       []string    `json:"delegation_path,omitempty"`
	DelegationChain      []chainLink `json:"delegation_chain,omitempty"`
	HopCount             int         `json:"hop_count,omitempty"`
	DelegationGraphEpoch *int64      `json:"delegation_graph_epoch,omitempty"`
}

// chainLink is one element of the delegation_chain claim: the originating
// issuer first, the final receiver (without an edge) last.
type chainLink struct {
	ApplicationID    string `json:"application_id"`
	AgentSessionID   string `json:"agent_session_id,omitempty"`
	DelegationEdgeID string `json:"delegation_edge_id,omitempty"`
}

// setDelegation fills the delegated-token claims from a validated lineage
// (root-most edge first, presented edge last).
func (c *tokenClaims) setDelegation(path []*edge, epoch int64) {
	if len(path) == 0 {
		return
	}
	last := path[len(path)-1]
	c.AgentSessionID = last.target
	c.DelegationEdgeID = last.id
	c.SourceSessionID = last.source
	c.TargetSessionID = last.target
	c.DelegationPath = make([]string, len(path))
	c.DelegationChain = make([]chainLink, 0, len(path)+1)
	for i, e := range path {
		c.DelegationPath[i] = e.id
		c.DelegationChain = append(c.DelegationChain, chainLink{
			ApplicationID: e.issuer, AgentSessionID: e.source, DelegationEdgeID: e.id,
		})
	}
	c.DelegationChain = append(c.DelegationChain, chainLink{ApplicationID: last.receiver, AgentSessionID: last.target})
	c.HopCount = len(path)
	c.DelegationGraphEpoch = &epoch
}

// sign issues c as an ES256 JWT under the zone's current key. The caller
// holds w.mu.
func (w *world) sign(c *tokenClaims) (string, error) {
	if len(w.keys) == 0 {
		return "", errors.New("no zone signing key")
	}
	k := w.keys[0]
	t := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	t.Header["kid"] = k.kid
	return t.SignedString(k.private)
}

// issue creates the authority record behind a token and signs the token;
// the record expires with the token (PROTOCOL §3.4). The caller holds w.mu.
func (w *world) issue(c *tokenClaims, spec recordSpec, now time.Time, lifetime time.Duration) (string, *authorityRecord, error) {
	exp := now.Add(lifetime)
	rec := w.addRecord(spec.sessionType, spec.subjectID, spec.parentID, exp)
	c.SID = rec.id
	if c.RootSID == "" {
		c.RootSID = rec.id
	}
	c.Issuer = w.issuer
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(exp)
	c.ID = newID()
	c.ZoneID = w.zone
	tok, err := w.sign(c)
	if err != nil {
		delete(w.records, rec.id)
		return "", nil, err
	}
	w.sts.keysPublished = true
	return tok, rec, nil
}

// recordSpec is the authority record an exchange creates.
type recordSpec struct {
	sessionType, subjectID, parentID string
}

// maxBearer is the Gateway's bearer size cap (PROTOCOL §8.2 row 2).
const maxBearer = 4096

// peekClaims decodes a JWT payload without verifying it, as the Gateway's
// pre-flight checks do: three segments, unpadded base64url JSON, non-zero exp.
func peekClaims(token string) (*tokenClaims, bool) {
	parts := strings.Split(token, ".")
	// Only the segment count and the payload matter here: an empty header
	// or signature segment fails the signature check, later in the order.
	if len(parts) != 3 {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, false
	}
	var c tokenClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, false
	}
	if c.ExpiresAt == nil || c.ExpiresAt.Unix() == 0 {
		return nil, false
	}
	return &c, true
}

// verifySignature checks the ES256 signature of token against the zone keys
// by kid. Time claims are judged by the caller on the world clock. The caller
// holds w.mu.
func (w *world) verifySignature(token string) (*tokenClaims, error) {
	w.dropRetiredKeys(w.now())
	var c tokenClaims
	p := jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}), jwt.WithoutClaimsValidation())
	_, err := p.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		for _, k := range w.keys {
			if k.kid == kid {
				return &k.private.PublicKey, nil
			}
		}
		return nil, fmt.Errorf("unknown kid %q", kid)
	})
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// jwk renders a public key as a JWKS entry.
func jwk(kid string, pub *ecdsa.PublicKey) wire.JWK {
	pad := func(b *big.Int) string {
		buf := make([]byte, 32)
		b.FillBytes(buf)
		return base64.RawURLEncoding.EncodeToString(buf)
	}
	return wire.JWK{Kty: "EC", Crv: "P-256", Use: "sig", Kid: kid, Alg: "ES256", X: pad(pub.X), Y: pad(pub.Y)}
}

// handleJWKS serves GET /.well-known/jwks.json?zone_id= (PROTOCOL §3.9).
func (w *world) handleJWKS(rw http.ResponseWriter, r *http.Request) {
	zone := r.URL.Query().Get("zone_id")
	if zone == "" {
		writeSTSJSON(rw, http.StatusBadRequest, plainError{"invalid_token", "zone_id is required"})
		return
	}
	w.mu.Lock()
	w.dropRetiredKeys(w.now())
	var set wire.JWKS
	if zone == w.zone && w.sts.keysPublished {
		for _, k := range w.keys {
			set.Keys = append(set.Keys, jwk(k.kid, &k.private.PublicKey))
		}
	}
	w.mu.Unlock()
	if len(set.Keys) == 0 {
		writeSTSJSON(rw, http.StatusNotFound, plainError{"resource_not_found", "zone signing key not found"})
		return
	}
	rw.Header().Set("Cache-Control", "public, max-age=300, must-revalidate")
	writeSTSJSON(rw, http.StatusOK, set)
}

// plainError is the {"error","error_description"} body of the STS approval
// and JWKS routes, which carry no request id (PROTOCOL §9.1).
type plainError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// writeSTSJSON writes v as a JSON body with status, as the Go STS and Gateway do.
func writeSTSJSON(rw http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"internal_error","error_description":"response encoding failed"}`)
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	_, _ = rw.Write(b)
}
