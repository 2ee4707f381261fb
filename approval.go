package caracal

import (
	"context"
	"errors"
	"fmt"

	"github.com/caracal-go/caracal/internal/apierr"
	"github.com/caracal-go/caracal/internal/wire"
)

// WaitApproval waits until the approval with id is decided, then returns nil
// if it was approved: send the request that was held again (the STS finds the
// approved hold by its binding and consumes it). It returns an error wrapping
// ErrApprovalRejected for a rejection, an error for an expired or already
// used approval, and an error wrapping context.Cause(ctx) if ctx ends first
// (the approval is still pending: waiting again is safe). A poll that fails
// transiently (no answer, 408, 425, 429, 5xx) is sent again after a backoff that
// honours Retry-After; after four such failures in a row the wait ends with
// the last one. Close ends a wait in progress, and
// a wait after Close, with ErrClosed. An id that cannot be a Caracal id (1
// to 128 of letters, digits, "_", ".", "-" and ":", not "." or "..") is refused with
// ErrInvalidRequest before any call; one the STS does not know (it issues
// UUIDs) fails with ErrNotFound.
func (c *Client) WaitApproval(ctx context.Context, approvalID string) error {
	if err := c.check(ctx, "WaitApproval", true); err != nil {
		return err
	}
	if approvalID == "" {
		return fmt.Errorf("%w: WaitApproval needs an approval id; pass ApprovalRequiredError.ApprovalID", ErrInvalidRequest)
	}
	approvalID = wire.CanonicalID(approvalID)
	if !wire.ValidID(approvalID) || approvalID == "." || approvalID == ".." {
		// Not an id the STS issues: it would reach the poll's path (a dot
		// segment, resolved by a proxy, another path) and every message
		// here as it is.
		return fmt.Errorf("%w: WaitApproval: %.64q is not an approval id; pass ApprovalRequiredError.ApprovalID", ErrInvalidRequest, approvalID)
	}
	caller := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(c.life, func() { cancel(ErrClosed) })()
	// stsclient.WaitApproval long-polls until the approval leaves pending
	// or ctx ends, so one call is the whole wait.
	st, err := c.sts.WaitApproval(ctx, approvalID)
	if err != nil && caller.Err() != nil && errors.Is(err, context.Cause(caller)) {
		return fmt.Errorf("caracal: approval %s is still pending; waiting again is safe: %w", approvalID, err)
	}
	if err != nil {
		return err
	}
	switch st.State {
	case wire.ApprovalApproved:
		return nil
	case wire.ApprovalRejected:
		return fmt.Errorf("%w: %s", ErrApprovalRejected, approvalID)
	case wire.ApprovalExpired:
		return fmt.Errorf("caracal: approval %s expired; send the request again to raise a new one", approvalID)
	case wire.ApprovalConsumed:
		return fmt.Errorf("caracal: approval %s was already used by another request; send the request again to raise a new one", approvalID)
	}
	return fmt.Errorf("caracal: approval %s is in unknown state %.64q", approvalID, st.State)
}

// isApproval reports whether err is an approval hold. A nil err, the
// answer to every successful mint, is told apart before errors.As's target
// is allocated.
func isApproval(err error) bool {
	if err == nil {
		return false
	}
	var ae *apierr.ApprovalRequiredError
	return errors.As(err, &ae)
}
