package caracaltest

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// echoBodyLimit caps how much of a request body the echo upstream reads.
const echoBodyLimit = 1 << 20

// EchoResponse is the JSON body the stack's echo upstream answers with: what
// the upstream received after the Gateway processed the request. Tests decode
// it to assert on what reached the resource server.
type EchoResponse struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	// Query is the parsed query string.
	Query map[string][]string `json:"query,omitempty"`
	// Claims are the unverified claims of the bearer token in Authorization
	// (the Gateway's use=resource token), nil when there is none. The token
	// itself is never echoed.
	Claims *EchoClaims `json:"claims,omitempty"`
	// Traceparent, Tracestate and Baggage are the propagation headers.
	Traceparent string `json:"traceparent,omitempty"`
	Tracestate  string `json:"tracestate,omitempty"`
	Baggage     string `json:"baggage,omitempty"`
	// RequestID is the X-Request-Id header.
	RequestID string `json:"request_id,omitempty"`
	// Header holds every request header except Authorization and Cookie.
	Header map[string][]string `json:"header,omitempty"`
	// Body is the request body (at most 1 MiB of it).
	Body string `json:"body,omitempty"`
}

// EchoClaims are the claims of the token the echo upstream was called with.
type EchoClaims struct {
	Use              string   `json:"use,omitempty"`
	Sub              string   `json:"sub,omitempty"`
	ClientID         string   `json:"client_id,omitempty"`
	JTI              string   `json:"jti,omitempty"`
	AgentSessionID   string   `json:"agent_session_id,omitempty"`
	DelegationEdgeID string   `json:"delegation_edge_id,omitempty"`
	HopCount         int      `json:"hop_count,omitempty"`
	Scope            string   `json:"scope,omitempty"`
	Aud              []string `json:"aud,omitempty"`
}

// echoHandler answers every request with an EchoResponse.
type echoHandler struct{}

func (echoHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, echoBodyLimit))
	if err != nil {
		http.Error(w, "reading request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	resp := EchoResponse{
		Method:      r.Method,
		Path:        r.URL.Path,
		Traceparent: r.Header.Get("Traceparent"),
		Tracestate:  r.Header.Get("Tracestate"),
		Baggage:     r.Header.Get("Baggage"),
		RequestID:   r.Header.Get("X-Request-Id"),
		Body:        string(body),
	}
	if q := r.URL.Query(); len(q) > 0 {
		resp.Query = q
	}
	if tok, ok := bearer(r.Header.Get("Authorization")); ok {
		if c, ok := decodeEchoClaims(tok); ok {
			resp.Claims = &c
		}
	}
	h := r.Header.Clone()
	h.Del("Authorization")
	h.Del("Cookie")
	if len(h) > 0 {
		resp.Header = h
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// bearer extracts the token of a "Bearer <token>" header value (scheme
// case-insensitive).
func bearer(v string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// unverifiedClaims decodes a JWT's payload without checking its signature.
func unverifiedClaims(tok string) (map[string]json.RawMessage, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, false
	}
	return m, true
}

func decodeEchoClaims(tok string) (EchoClaims, bool) {
	m, ok := unverifiedClaims(tok)
	if !ok {
		return EchoClaims{}, false
	}
	var c EchoClaims
	str := func(k string) string {
		var s string
		_ = json.Unmarshal(m[k], &s)
		return s
	}
	c.Use = str("use")
	c.Sub = str("sub")
	c.ClientID = str("client_id")
	c.JTI = str("jti")
	c.AgentSessionID = str("agent_session_id")
	c.DelegationEdgeID = str("delegation_edge_id")
	c.Scope = str("scope")
	var hops float64
	if json.Unmarshal(m["hop_count"], &hops) == nil {
		c.HopCount = int(hops)
	}
	// aud is a string or an array of strings.
	if s := str("aud"); s != "" {
		c.Aud = []string{s}
	} else {
		_ = json.Unmarshal(m["aud"], &c.Aud)
	}
	return c, true
}
