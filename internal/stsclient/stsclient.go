// Package stsclient talks to the Caracal STS: the application's lifecycle
// token (cached, shared, refreshed before expiry), per-request gateway
// mandates (never cached), approval long-polls and the JWKS.
package stsclient

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/caracal-go/caracal/internal/wire"
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
}

// Token is an access token with its expiry and the claims the SDK reads
// (unverified: the SDK is the token's holder, not its verifier).
type Token struct {
	Value     string
	ExpiresAt time.Time
	SID       string // authority record id
	Use       string
}

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
	cfg Config
}

var errUnimplemented = errors.New("stsclient: not implemented")

// New returns a Client.
func New(cfg Config) *Client { return &Client{cfg: cfg} }

// Lifecycle returns a valid lifecycle token (use=session, agent:lifecycle),
// from the cache when it has enough life left; concurrent callers share one
// exchange.
func (c *Client) Lifecycle(ctx context.Context) (Token, error) { return Token{}, errUnimplemented }

// Invalidate drops the cached lifecycle token if it is still value, so that
// the next Lifecycle call exchanges again (used after a Coordinator 401).
func (c *Client) Invalidate(value string) {}

// Mint exchanges for a fresh single-use gateway mandate. Never cached.
func (c *Client) Mint(ctx context.Context, r MintRequest) (Token, error) {
	return Token{}, errUnimplemented
}

// WaitApproval long-polls GET /approvals/{id}?wait= until the approval leaves
// pending or ctx is done.
func (c *Client) WaitApproval(ctx context.Context, id string) (wire.ApprovalStatus, error) {
	return wire.ApprovalStatus{}, errUnimplemented
}
