// Package apierr defines the SDK's error values. The root package re-exports
// them under the names users see (caracal.Error, caracal.ErrNotFound, …); they
// live here so that the internal wire clients can return them.
package apierr

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors for states a caller acts on. Match with errors.Is.
var (
	ErrNoSession     = errors.New("caracal: no agent session is bound to the context; call Spawn (or bind one with NewContext) first, or pass AsApplication() for the application's own identity")
	ErrClosed        = errors.New("caracal: the client is closed; create a new one with caracal.New")
	ErrSessionClosed = errors.New("caracal: the session is closed; spawn a new one to keep working")
	ErrInvalidGrant  = errors.New("caracal: invalid grant")
	// ErrNarrowNeedsParent and ErrBudgetUnsupported are grants refused
	// before any call, so they match ErrInvalidGrant too.
	ErrNarrowNeedsParent = fmt.Errorf("%w: Grant.Narrow needs a parent session; spawn the parent first or pass WithParent", ErrInvalidGrant)
	ErrBudgetUnsupported = fmt.Errorf("%w: the budget constraint cannot be honoured by a Caracal v1 STS (every mint against such a delegation fails); leave Budget at 0", ErrInvalidGrant)
	ErrStaticToken       = errors.New("caracal: a bootstrap token cannot mint gateway mandates; configure a client secret")
	ErrCredentials       = errors.New("caracal: the application's credentials are not accepted; check the client secret (or bootstrap token), the zone id and the application id")

	ErrNotFound         = errors.New("caracal: not found")
	ErrAccessDenied     = errors.New("caracal: access denied")
	ErrUnauthorized     = errors.New("caracal: unauthorized")
	ErrRateLimited      = errors.New("caracal: rate limited")
	ErrConflict         = errors.New("caracal: conflict")
	ErrInvalidRequest   = errors.New("caracal: invalid request")
	ErrUnavailable      = errors.New("caracal: service unavailable")
	ErrApprovalRequired = errors.New("caracal: human approval required")
	ErrApprovalRejected = errors.New("caracal: approval rejected")

	ErrLeaseLost    = errors.New("caracal: service lease lost")
	ErrLeaseFenced  = errors.New("caracal: service lease fenced by a newer holder")
	ErrLeaseExpired = errors.New("caracal: service lease expired before it was renewed")
	ErrSuspended    = errors.New("caracal: service session suspended")
)

// Error is a non-success answer from the STS, the Coordinator or the Gateway.
// It never carries a secret: bodies are reduced to their code, description and
// request id.
type Error struct {
	// Service is "sts", "coordinator" or "gateway".
	Service string
	// Method and Path name the request (path only, no query).
	Method, Path string
	// StatusCode is the HTTP status.
	StatusCode int
	// Code is the server's error code ("session_not_found", "access_denied", …).
	Code string
	// Description is the server's human text, if any.
	Description string
	// RequestID is the server's request id, if any. The Coordinator
	// seldom returns it: there it is the id the SDK sent, which the
	// Coordinator adopts.
	RequestID string
	// RetryAfter is the server's Retry-After, if any.
	RetryAfter time.Duration
}

// Error implements error.
func (e *Error) Error() string {
	msg := fmt.Sprintf("caracal: %s %s %s: %d", e.Service, e.Method, e.Path, e.StatusCode)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Description != "" {
		msg += ": " + e.Description
	}
	if e.RequestID != "" {
		msg += " (request id " + e.RequestID + ")"
	}
	if e.Is(ErrCredentials) {
		// The one refusal the caller's configuration alone can fix.
		msg += "; check the client secret, the zone id and the application id"
	}
	return msg
}

// Temporary reports whether retrying the same call later may succeed.
func (e *Error) Temporary() bool {
	switch {
	case e.Code == "sts_unavailable":
		return true
	case e.StatusCode == 408, e.StatusCode == 425, e.StatusCode == 429:
		// The receipt limit lasts for hours, and the depth limit
		// is the parent's depth, which no retry changes.
		return e.Code != "idempotency_receipt_limit_exceeded" && e.Code != "session_depth_limit_exceeded"
	case e.StatusCode >= 500:
		return true
	}
	return false
}

// Is maps server codes to the package's sentinels.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == 404
	case ErrAccessDenied:
		return e.StatusCode == 403 || e.Code == "access_denied"
	case ErrUnauthorized:
		return e.StatusCode == 401
	case ErrRateLimited:
		return e.StatusCode == 429
	case ErrConflict:
		return e.StatusCode == 409
	case ErrInvalidRequest:
		return e.StatusCode == 400 || e.StatusCode == 413 || e.StatusCode == 415
	case ErrUnavailable:
		return e.StatusCode >= 500 || e.Code == "sts_unavailable"
	case ErrApprovalRequired:
		return e.Code == "interaction_required"
	case ErrApprovalRejected:
		return e.Description == "approval was rejected"
	case ErrLeaseFenced:
		return e.Code == "session_lease_fenced"
	case ErrLeaseExpired:
		return e.Code == "session_lease_expired"
	case ErrSuspended:
		return e.Code == "session_suspended" || e.Code == "session_lease_expired"
	case ErrLeaseLost:
		if e.Code == "session_lease_fenced" {
			return true
		}
		// The other codes speak of a lease only on a heartbeat or a
		// lease acquire; elsewhere (a start, a retire, a listing) they
		// are about a session that may hold none.
		if e.Service != "coordinator" || !leasePath(e.Path) {
			return false
		}
		switch e.Code {
		case "session_not_live", "session_subject_inactive", "session_not_service":
			return true
		}
		return e.StatusCode == 404 && e.Code == "session_not_found"
	case ErrCredentials:
		// zone_invalid: the secret is right but the application lives in
		// another zone (PROTOCOL §3.3).
		return e.Service == "sts" && (e.Description == "invalid client credentials" || e.Code == "zone_invalid")
	}
	return false
}

// leasePath reports whether path is a heartbeat or a lease acquire
// (PROTOCOL §4.5, §4.6).
func leasePath(path string) bool {
	rest, ok := strings.CutPrefix(path, "/zones/")
	if !ok {
		return false
	}
	parts := strings.Split(rest, "/")
	return len(parts) == 4 && parts[1] == "agents" && (parts[3] == "heartbeat" || parts[3] == "lease")
}

// ApprovalRequiredError is returned when a mandate mint is held for human
// approval (STS interaction_required). Wait for the decision with
// Client.WaitApproval, then retry.
type ApprovalRequiredError struct {
	// Err is the STS answer that raised the hold (401 interaction_required).
	Err        *Error
	ApprovalID string
	Resource   string
	Scopes     []string
	State      string
	Tier       string
	Binding    string
	ExpiresAt  time.Time
}

// Error implements error.
func (e *ApprovalRequiredError) Error() string {
	msg := fmt.Sprintf("caracal: approval %s required for %s on %s (state %s", printable([]byte(e.ApprovalID), maxTextBody), e.Scopes, e.Resource, e.State)
	if e.Err != nil && e.Err.RequestID != "" {
		msg += ", request id " + e.Err.RequestID
	}
	return msg + "); wait for it with WaitApproval and retry"
}

// Unwrap returns the underlying server error.
func (e *ApprovalRequiredError) Unwrap() error { return e.Err }
