package caracal

import (
	"context"
	"errors"
)

// mintFailure is a failed mint of a gateway mandate. http.Client.Do
// documents that the *url.Error it returns reports Timeout when the request
// timed out, and url.Error asks only the error the transport returned,
// without unwrapping it. So a mint cut short by a deadline (the request's,
// or Client.Timeout's) must say itself that it is a timeout, as the errors
// of the base transport do; otherwise whether the caller sees one depends on
// a race inside http.Client.
type mintFailure struct{ err error }

func (e mintFailure) Error() string { return e.err.Error() }
func (e mintFailure) Unwrap() error { return e.err }

// Timeout reports whether the mint failed because a deadline passed.
func (e mintFailure) Timeout() bool {
	if errors.Is(e.err, context.DeadlineExceeded) {
		return true
	}
	var t interface{ Timeout() bool }
	return errors.As(e.err, &t) && t.Timeout()
}
