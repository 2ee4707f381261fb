// Package coordclient talks to the Caracal Coordinator: session start and
// retire, heartbeat, lease acquire, delegations. Every call authenticates with
// a lifecycle token from a TokenSource and, on a 401, invalidates it and
// retries once with a fresh one.
package coordclient

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/caracal-go/caracal/internal/stsclient"
	"github.com/caracal-go/caracal/internal/wire"
)

// TokenSource yields lifecycle tokens.
type TokenSource interface {
	Lifecycle(ctx context.Context) (stsclient.Token, error)
	Invalidate(value string)
}

// Config configures a Client.
type Config struct {
	BaseURL    string
	ZoneID     string
	HTTPClient *http.Client
	Tokens     TokenSource
	Logger     *slog.Logger // never nil
}

// StartOptions carries the headers of a session start.
type StartOptions struct {
	// IdempotencyKey, if empty, is generated (and sent with
	// Idempotency-Key-Kind: generated).
	IdempotencyKey string
	Traceparent    string
	Tracestate     string
}

// Client is safe for concurrent use.
type Client struct {
	cfg Config
}

var errUnimplemented = errors.New("coordclient: not implemented")

// New returns a Client.
func New(cfg Config) *Client { return &Client{cfg: cfg} }

// Start starts a session (POST /zones/{z}/agents).
func (c *Client) Start(ctx context.Context, req wire.StartSessionRequest, o StartOptions) (wire.Session, error) {
	return wire.Session{}, errUnimplemented
}

// Retire retires a session (DELETE /zones/{z}/agents/{id}); generation 0
// sends no body (task), otherwise {"lease_generation":generation}. A session
// that is already gone counts as retired.
func (c *Client) Retire(ctx context.Context, id string, generation int64) error {
	return errUnimplemented
}

// Heartbeat renews a service lease.
func (c *Client) Heartbeat(ctx context.Context, id string, generation int64) (wire.HeartbeatResponse, error) {
	return wire.HeartbeatResponse{}, errUnimplemented
}

// Lease acquires (attaches to) a service session, bumping its generation.
func (c *Client) Lease(ctx context.Context, id string) (wire.LeaseResponse, error) {
	return wire.LeaseResponse{}, errUnimplemented
}

// Delegate creates a delegation edge. An empty idempotencyKey sends none.
func (c *Client) Delegate(ctx context.Context, req wire.CreateDelegationRequest, idempotencyKey string) (wire.Delegation, error) {
	return wire.Delegation{}, errUnimplemented
}

// RevokeDelegation revokes an edge and its downstream edges.
func (c *Client) RevokeDelegation(ctx context.Context, id string) (wire.RevokeResponse, error) {
	return wire.RevokeResponse{}, errUnimplemented
}

// InboundEdge checks that edgeID is an active inbound edge of sessionID.
func (c *Client) InboundEdge(ctx context.Context, sessionID, edgeID string) (wire.InboundEdgeStatus, error) {
	return wire.InboundEdgeStatus{}, errUnimplemented
}
