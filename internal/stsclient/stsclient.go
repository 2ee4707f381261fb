// Package stsclient talks to the Caracal STS: the application's lifecycle
// token (cached, shared, refreshed before expiry), per-request gateway
// mandates (never cached) and approval long-polls.
package stsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caracal-go/caracal/internal/apierr"
	"github.com/caracal-go/caracal/internal/wire"
)

const (
	// Timeout bounds one STS exchange unless the caller's ctx is shorter.
	Timeout = 30 * time.Second
	// maxBody caps how much of an STS response is read.
	maxBody = 1 << 20

	tokenPath = "/oauth/2/token"
)

// Config configures a Client. Exactly one of ClientSecret and BootstrapToken
// is set.
type Config struct {
	BaseURL        string
	ZoneID         string
	ApplicationID  string
	ClientSecret   string
	BootstrapToken string
	Resources      []string // lifecycle-token audience
	HTTPClient     *http.Client
	Logger         *slog.Logger // never nil

	// Now, if set, replaces time.Now (tests).
	Now func() time.Time
}

// Token is an access token with its expiry and the claims the SDK reads
// (unverified: the SDK is the token's holder, not its verifier).
type Token struct {
	Value     string
	ExpiresAt time.Time
	IssuedAt  time.Time // the iat claim, on the STS's clock; zero if absent
	// ExpClaim is the exp claim, on the STS's clock (zero if absent):
	// ExpClaim minus IssuedAt is the life the STS gave the token, which
	// ExpiresAt, on the local clock, does not tell when the clocks differ.
	ExpClaim time.Time
	SID      string // authority record id
	Use      string
	// AgentSessionID and DelegationEdgeID are the delegation claims of a
	// mandate ("" when absent).
	AgentSessionID   string
	DelegationEdgeID string
	// Scope is the scope claim, space-separated ("" when absent).
	Scope string
	// ZoneID and ClientID are the zone_id and client_id claims ("" when
	// absent).
	ZoneID, ClientID string

	// bearer is "Bearer " + Value, built once for a token that is served
	// many times (the cached lifecycle token, the static one).
	bearer string
}

// Bearer returns the token as an Authorization header value.
func (t Token) Bearer() string {
	if t.bearer != "" {
		return t.bearer
	}
	return "Bearer " + t.Value
}

// String hides the token value.
func (t Token) String() string {
	return fmt.Sprintf("stsclient.Token{use=%s sid=%s expires=%s}", t.Use, t.SID, t.ExpiresAt.UTC().Format(time.RFC3339))
}

// GoString hides the token value.
func (t Token) GoString() string { return t.String() }

// MintRequest asks for a use=gateway mandate (PROTOCOL §3.7).
type MintRequest struct {
	Resource         string
	Scopes           []string
	AgentSessionID   string
	DelegationEdgeID string
	TTLSeconds       int
	ApprovalID       string
}

// Client is safe for concurrent use.
type Client struct {
	cfg      Config
	endpoint string // {base}/oauth/2/token
	static   Token  // bootstrap-token mode when Value != ""

	// held is the cached lifecycle token, nil when there is none. It is
	// replaced whole under mu and read without it, so that the callers
	// served from the cache (Headers on every request) take no lock.
	held     atomic.Pointer[heldToken]
	mu       sync.Mutex
	inflight *exchange
}

// heldToken is a cached lifecycle token; it is never changed.
type heldToken struct {
	tok     Token
	refresh time.Time // serve tok until here
}

// fresh returns the cached lifecycle token if there is one to serve.
func (c *Client) fresh() (Token, bool) {
	if h := c.held.Load(); h != nil && c.cfg.Now().Before(h.refresh) {
		return h.tok, true
	}
	return Token{}, false
}

// exchange is one lifecycle exchange that concurrent callers share.
type exchange struct {
	done chan struct{}
	tok  Token
	err  error
	// abandoned: the exchange failed because the leader's own ctx ended,
	// not because of the STS. A follower then tries again on its own
	// instead of inheriting the leader's cancellation.
	abandoned bool
}

// New returns a Client.
func New(cfg Config) *Client {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Resources = append([]string(nil), cfg.Resources...)
	c := &Client{cfg: cfg, endpoint: strings.TrimRight(cfg.BaseURL, "/") + tokenPath}
	if cfg.ClientSecret == "" && cfg.BootstrapToken != "" {
		c.static = parseBootstrapToken(cfg.BootstrapToken)
		c.static.bearer = "Bearer " + c.static.Value
	}
	return c
}

// Static reports whether the client runs on a pre-minted bootstrap token.
func (c *Client) Static() bool { return c.static.Value != "" }

// Lifecycle returns a valid lifecycle token (use=session, agent:lifecycle),
// from the cache when it has enough life left; concurrent callers share one
// exchange. A caller whose ctx ends while it waits returns early; the shared
// exchange carries on for the others.
func (c *Client) Lifecycle(ctx context.Context) (Token, error) {
	if c.Static() {
		if !c.static.ExpiresAt.IsZero() && !c.cfg.Now().Before(c.static.ExpiresAt) {
			return Token{}, fmt.Errorf("caracal: the bootstrap token expired at %s; configure a fresh CARACAL_BOOTSTRAP_TOKEN or a client secret: %w",
				c.static.ExpiresAt.UTC().Format(time.RFC3339), apierr.ErrCredentials)
		}
		return c.static, nil
	}
	for {
		if tok, ok := c.fresh(); ok {
			return tok, nil
		}
		c.mu.Lock()
		// An exchange may have ended since.
		if tok, ok := c.fresh(); ok {
			c.mu.Unlock()
			return tok, nil
		}
		if x := c.inflight; x != nil {
			c.mu.Unlock()
			select {
			case <-x.done:
			case <-ctx.Done():
				return Token{}, context.Cause(ctx)
			}
			if x.abandoned {
				// The leader gave up, not the exchange: try again, or
				// report this caller's own reason.
				if ctx.Err() != nil {
					return Token{}, context.Cause(ctx)
				}
				continue
			}
			return x.tok, x.err
		}
		x := &exchange{done: make(chan struct{})}
		c.inflight = x
		c.mu.Unlock()
		return c.lead(ctx, x)
	}
}

// lead runs the exchange x for Lifecycle and hands its outcome to the
// callers waiting on it. If the exchange panics (a nil ctx, a caller's
// transport or logger), the panic goes on to this caller and the waiting
// ones try again, rather than waiting for an exchange that never ends.
func (c *Client) lead(ctx context.Context, x *exchange) (Token, error) {
	finished := false
	defer func() {
		if !finished {
			c.mu.Lock()
			c.inflight = nil
			c.mu.Unlock()
			x.abandoned = true
			close(x.done)
		}
	}()
	issued := c.cfg.Now()
	tok, expiresIn, err := c.exchangeLifecycle(ctx)

	c.mu.Lock()
	c.inflight = nil
	if err == nil {
		tok.bearer = "Bearer " + tok.Value
		// expires_in, on the local clock: exp is on the STS's, and a clock
		// ahead of it would make every token look expired.
		life := time.Duration(expiresIn) * time.Second
		c.held.Store(&heldToken{tok: tok, refresh: issued.Add(life - margin(life))})
	}
	c.mu.Unlock()
	x.tok, x.err, x.abandoned = tok, err, err != nil && ctx.Err() != nil
	finished = true
	close(x.done)
	return tok, err
}

// maxExpiresIn caps the expires_in of a token answer, in seconds.
const maxExpiresIn = 24 * 60 * 60

// margin is how long before expiry a cached lifecycle token is replaced:
// min(Timeout+30s, expires_in/2), so that a token handed out is still
// valid for a whole call.
func margin(life time.Duration) time.Duration {
	return min(Timeout+30*time.Second, life/2)
}

// Invalidate drops the cached lifecycle token if it is still value, so that
// the next Lifecycle call exchanges again (used after a Coordinator 401).
func (c *Client) Invalidate(value string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h := c.held.Load(); value != "" && h != nil && h.tok.Value == value {
		c.held.Store(nil)
	}
}

// Drop forgets the cached lifecycle token whatever its value, for when its
// authority record was revoked by a side effect the SDK caused itself.
func (c *Client) Drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held.Store(nil)
}

func (c *Client) exchangeLifecycle(ctx context.Context) (Token, int, error) {
	if len(c.cfg.Resources) == 0 {
		return Token{}, 0, errors.New("caracal: no resources configured for the lifecycle token; add a resource identifier (Config.Resources or WithResources, CARACAL_APP_RESOURCES, or a resource binding)")
	}
	tok, expiresIn, err := c.post(ctx, wire.TokenRequest{
		ZoneID:        c.cfg.ZoneID,
		ApplicationID: c.cfg.ApplicationID,
		ClientSecret:  c.cfg.ClientSecret,
		Scopes:        []string{wire.ScopeLifecycle},
		Resources:     c.cfg.Resources,
	}, nil)
	if err != nil {
		var e *apierr.Error
		if errors.As(err, &e) && e.StatusCode == http.StatusForbidden &&
			(e.Description == "policy denied (resource_not_granted)" || e.Description == "policy denied (no_rule_matched)") {
			// The policy grants the application none of the resources
			// asked for: only the configuration can fix that. Other
			// reasons (a restriction, no active policy, the mint budget)
			// are not the configuration's.
			return Token{}, 0, fmt.Errorf("caracal: no lifecycle token for application %s: the zone's policy grants it none of the resources %s; configure resources it owns (Config.Resources or WithResources, CARACAL_APP_RESOURCES, or a resource binding): %w",
				c.cfg.ApplicationID, strings.Join(c.cfg.Resources, ", "), err)
		}
		return Token{}, 0, err
	}
	if (tok.Use != "" && tok.Use != wire.UseSession) || tok.DelegationEdgeID != "" {
		// A mandate is single-use authority of a session: cached as the
		// lifecycle token, Headers would hand it to other services.
		return Token{}, 0, fmt.Errorf("caracal: sts POST %s: invalid token response: the lifecycle token is not of class session: %w", tokenPath, apierr.ErrUnavailable)
	}
	if (tok.ZoneID != "" && tok.ZoneID != c.cfg.ZoneID) || (tok.ClientID != "" && wire.CanonicalID(tok.ClientID) != wire.CanonicalID(c.cfg.ApplicationID)) {
		// Another application's authority, which this client was not
		// given: it must neither act with it nor hand it on.
		return Token{}, 0, fmt.Errorf("caracal: sts POST %s: invalid token response: the lifecycle token is of another zone or application: %w", tokenPath, apierr.ErrUnavailable)
	}
	sid := tok.SID
	if !wire.ValidID(sid) {
		// The STS's text, up to a megabyte of it: not logged.
		sid = "(not an id)"
	}
	c.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, "caracal: lifecycle token exchanged",
		slog.String("sid", sid), slog.Int("expires_in", expiresIn))
	return tok, expiresIn, nil
}

// post performs one token exchange. mint, when non-nil, describes a mandate
// request so that a hold can name what it holds.
func (c *Client) post(ctx context.Context, tr wire.TokenRequest, mint *MintRequest) (Token, int, error) {
	call, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(call, http.MethodPost, c.endpoint, strings.NewReader(tr.Encode()))
	if err != nil {
		return Token{}, 0, fmt.Errorf("caracal: STS URL %q: %w", c.cfg.BaseURL, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// net/http's HTTP/2 transport re-sends a request whose stream was
	// reset with PROTOCOL_ERROR (which does not mean the STS left it
	// unprocessed) if it can rewind the body. An exchange is sent once.
	req.GetBody = nil
	issued := c.cfg.Now()
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return Token{}, 0, apierr.Transport(ctx, call, Timeout, "sts", http.MethodPost, tokenPath, err)
	}
	defer resp.Body.Close()
	body, err := apierr.ReadBody(resp, maxBody)
	if err != nil && resp.StatusCode == http.StatusOK {
		return Token{}, 0, apierr.Transport(ctx, call, Timeout, "sts", http.MethodPost, tokenPath, err)
	}
	// A refusal whose body was cut off is still an answer: its status
	// and headers say what happened. What was read of the body is
	// dropped: it may end in part of an echoed secret that no redaction
	// would recognise.
	if resp.StatusCode != http.StatusOK {
		if err != nil {
			body = nil
		}
		e, eb := apierr.FromResponse("sts", http.MethodPost, tokenPath, resp, body, c.cfg.ClientSecret)
		if mint != nil && eb.Error == "interaction_required" {
			return Token{}, 0, apierr.Approval(e, eb, mint.Resource, mint.Scopes, c.cfg.ClientSecret)
		}
		return Token{}, 0, e
	}
	tok, expiresIn, err := decodeToken(resp.Header.Get("Content-Type"), body)
	// The token's exp is on the STS's clock; expires_in counted from before
	// the request is on ours, and never later than the real expiry however
	// far the clocks drift apart. The earlier of the two is kept, counted
	// from issued so that it keeps issued's monotonic clock reading: a step
	// of the wall clock then cannot lengthen a cached token's life.
	if err == nil {
		life := time.Duration(expiresIn) * time.Second
		if !tok.ExpiresAt.IsZero() {
			life = min(life, tok.ExpiresAt.Sub(issued))
		}
		tok.ExpiresAt = issued.Add(life)
	}
	return tok, expiresIn, err
}

// decodeToken validates a 200 answer (PROTOCOL §3.6): JSON (or no content
// type), an access_token in RFC 6750 form, token_type absent or Bearer, integer
// expires_in > 0.
func decodeToken(contentType string, body []byte) (Token, int, error) {
	bad := func(why string) (Token, int, error) {
		return Token{}, 0, fmt.Errorf("caracal: sts POST %s: invalid token response: %s: %w", tokenPath, why, apierr.ErrUnavailable)
	}
	if contentType != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return bad(fmt.Sprintf("content type %.64q", contentType))
		}
	}
	var tr struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return bad("malformed JSON")
	}
	if tr.AccessToken == "" {
		return bad("no access_token")
	}
	if !wire.BearerToken(tr.AccessToken) {
		return bad("access_token has characters a bearer token cannot have")
	}
	if tr.TokenType != "" && !strings.EqualFold(tr.TokenType, "Bearer") {
		return bad(fmt.Sprintf("token_type %.64q", tr.TokenType))
	}
	// A bare JSON integer only: not a string, not a fraction.
	n, err := strconv.ParseInt(string(tr.ExpiresIn), 10, 64)
	if err != nil || n <= 0 {
		return bad("expires_in must be a positive integer")
	}
	// No Caracal token lives a day; a larger figure is not trusted, and
	// would overflow a time.Duration past 292 years (an int, on 32-bit
	// platforms, past 68).
	return parseToken(tr.AccessToken), int(min(n, maxExpiresIn)), nil
}

// maxUnix is 9999-12-31T23:59:59Z, the latest exp taken as it is.
const maxUnix = 253402300799

// parseToken reads the unverified payload claims the SDK needs from a token
// the STS answered. A token that is not a JWT is kept as an opaque value.
func parseToken(value string) Token {
	tok := Token{Value: value}
	raw, ok := wire.JWTPart(value, 1)
	if !ok {
		return tok
	}
	var c tokenClaims
	if json.Unmarshal(raw, &c) != nil {
		return tok
	}
	return c.apply(tok)
}

// parseBootstrapToken is parseToken for the configured bootstrap token, the
// user's input rather than the STS's answer. It reads the claims through a
// map, not a struct: claim names are case-sensitive, and a struct field
// would also take "EXP" or "SID" in place of the "exp" or "sid" the servers
// read. (The map costs about 75 allocations, which every mint would pay.)
func parseBootstrapToken(value string) Token {
	tok := Token{Value: value}
	raw, ok := wire.JWTPart(value, 1)
	if !ok {
		return tok
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return tok
	}
	var c tokenClaims
	for name, dst := range map[string]any{"sid": &c.SID, "use": &c.Use, "exp": &c.Exp, "iat": &c.Iat} {
		if v, ok := m[name]; ok && json.Unmarshal(v, dst) != nil {
			return tok
		}
	}
	return c.apply(tok)
}

// tokenClaims are the claims of a token the SDK reads.
type tokenClaims struct {
	SID              string      `json:"sid"`
	Use              string      `json:"use"`
	Exp              json.Number `json:"exp"`
	Iat              json.Number `json:"iat"`
	AgentSessionID   string      `json:"agent_session_id"`
	DelegationEdgeID string      `json:"delegation_edge_id"`
	Scope            string      `json:"scope"`
	ZoneID           string      `json:"zone_id"`
	ClientID         string      `json:"client_id"`
}

// apply sets tok's fields from the claims.
func (c tokenClaims) apply(tok Token) Token {
	tok.SID, tok.Use = c.SID, c.Use
	tok.AgentSessionID, tok.DelegationEdgeID = c.AgentSessionID, c.DelegationEdgeID
	tok.Scope, tok.ZoneID, tok.ClientID = c.Scope, c.ZoneID, c.ClientID
	if exp, err := c.Exp.Float64(); err == nil && exp > 0 {
		// Capped at the year 9999: a larger figure would overflow the
		// conversion into a time long past.
		tok.ExpiresAt = time.Unix(int64(min(exp, maxUnix)), 0)
		tok.ExpClaim = tok.ExpiresAt
	}
	if iat, err := c.Iat.Float64(); err == nil && iat > 0 {
		tok.IssuedAt = time.Unix(int64(min(iat, maxUnix)), 0)
	}
	return tok
}
