package caracal

import "github.com/caracal-go/caracal/internal/apierr"

// Error is a non-success answer from the STS or the Coordinator. Match it
// with errors.As; match states with errors.Is and the sentinels below (a
// *Error reports Is for the sentinels its code maps to). A Gateway answer is
// not an Error: the transport returns it as the *http.Response, whatever its
// status. Its fields:
//
//	Service     string        // "sts" or "coordinator"
//	Method      string        // the request's method
//	Path        string        // the request's path, without the query
//	StatusCode  int           // the HTTP status
//	Code        string        // the server's error code, e.g. "session_not_found"
//	Description string        // the server's text, if any
//	RequestID   string        // the server's request id (at the Coordinator, the one the SDK sent), if any
//	RetryAfter  time.Duration // the server's Retry-After, if any
//
// Its Temporary method reports whether the same call may succeed later:
// true for 5xx, sts_unavailable, 408, 425 and 429, except for a limit that
// no retry lifts (session_depth_limit_exceeded,
// idempotency_receipt_limit_exceeded).
type Error = apierr.Error

// ApprovalRequiredError is returned when minting a gateway mandate is held
// for human approval; errors.Is(err, ErrApprovalRequired) also matches it.
// Wait for the decision with Client.WaitApproval(ctx, e.ApprovalID), then
// send the request again. Its fields:
//
//	Err        *Error    // the STS answer that raised the hold
//	ApprovalID string    // what WaitApproval takes
//	Resource   string    // the resource identifier of the held mint
//	Scopes     []string  // the scopes of the held mint
//	State      string    // "pending" when raised
//	Tier       string    // the risk tier that gated it, if the STS names one
//	Binding    string    // the hold's binding digest
//	ExpiresAt  time.Time // when the hold expires
type ApprovalRequiredError = apierr.ApprovalRequiredError

// Sentinel errors, matched with errors.Is. Each message says what to do.
var (
	// ErrNoSession means that no agent session is bound to the context.
	ErrNoSession = apierr.ErrNoSession
	// ErrClosed means that the client was closed.
	ErrClosed = apierr.ErrClosed
	// ErrSessionClosed means that the session or service handle was
	// closed, a parent session it was started under here ended, or
	// RevokeDelegation revoked a delegation it held.
	ErrSessionClosed = apierr.ErrSessionClosed
	// ErrNarrowNeedsParent means that Grant.Narrow was used with no parent
	// session. It also matches ErrInvalidGrant.
	ErrNarrowNeedsParent = apierr.ErrNarrowNeedsParent
	// ErrBudgetUnsupported means that Constraints.Budget was set, which a
	// v1 STS cannot honour. It also matches ErrInvalidGrant.
	ErrBudgetUnsupported = apierr.ErrBudgetUnsupported
	// ErrInvalidGrant means that a grant or delegation was refused locally
	// before any call, or that a gateway mandate was minted with too little
	// life for the Gateway (its delegation ends within 35 s; see
	// Grant.Narrow).
	ErrInvalidGrant = apierr.ErrInvalidGrant
	// ErrStaticToken means that the client runs on a bootstrap token and
	// cannot mint.
	ErrStaticToken = apierr.ErrStaticToken
	// ErrCredentials means that the STS refused the application's
	// credentials (a wrong secret, or an application of another zone), or
	// that the bootstrap token expired.
	ErrCredentials = apierr.ErrCredentials

	// ErrNotFound means that the server answered 404 (session, delegation,
	// approval, …).
	ErrNotFound = apierr.ErrNotFound
	// ErrAccessDenied means that the server answered 403 or access_denied.
	ErrAccessDenied = apierr.ErrAccessDenied
	// ErrUnauthorized means that the server answered 401.
	ErrUnauthorized = apierr.ErrUnauthorized
	// ErrRateLimited means that the server answered 429.
	ErrRateLimited = apierr.ErrRateLimited
	// ErrConflict means that the server answered 409.
	ErrConflict = apierr.ErrConflict
	// ErrInvalidRequest means that the server refused the request's shape
	// (400, 413, 415), or that an option value (WithTTL, WithLabels, …) was
	// refused before any call.
	ErrInvalidRequest = apierr.ErrInvalidRequest
	// ErrUnavailable means that the server is unavailable: it did not
	// answer, answered 5xx or sts_unavailable, or gave an answer that
	// cannot be used (malformed, or about another token, session,
	// delegation or approval than the one asked for).
	ErrUnavailable = apierr.ErrUnavailable
	// ErrApprovalRequired means that a mint is held for human approval
	// (see ApprovalRequiredError).
	ErrApprovalRequired = apierr.ErrApprovalRequired
	// ErrApprovalRejected means that the approval was rejected.
	ErrApprovalRejected = apierr.ErrApprovalRejected

	// ErrLeaseLost means that a service lease is gone for good (fenced,
	// terminated, not found). A server answer matches it only from a
	// heartbeat or an AttachService, except session_lease_fenced, which
	// matches from any call: a session_not_found from a Spawn or Close is
	// not a lost lease.
	ErrLeaseLost = apierr.ErrLeaseLost
	// ErrLeaseFenced means that a newer holder attached to the service
	// session. The SDK's errors that match it match ErrLeaseLost too.
	ErrLeaseFenced = apierr.ErrLeaseFenced
	// ErrLeaseExpired means that the lease deadline passed before a
	// renewal.
	ErrLeaseExpired = apierr.ErrLeaseExpired
	// ErrSuspended means that the service session is suspended.
	ErrSuspended = apierr.ErrSuspended
)
