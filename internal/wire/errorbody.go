package wire

import (
	"encoding/json"
	"strconv"
	"strings"
)

// ErrorBody is the union of the error body shapes of the STS, Coordinator and
// Gateway (PROTOCOL §9.1). Unused fields stay empty.
type ErrorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
	Message          string `json:"message,omitempty"`
	Detail           string `json:"detail,omitempty"`
	RequestID        string `json:"requestId,omitempty"`
	RequestIDSnake   string `json:"request_id,omitempty"`
	State            string `json:"state,omitempty"`

	// Approval hold fields (interaction_required).
	ApprovalID        string `json:"approval_id,omitempty"`
	ApprovalType      string `json:"approval_type,omitempty"`
	Tier              string `json:"tier,omitempty"`
	Binding           string `json:"binding,omitempty"`
	ApprovalExpiresAt string `json:"approval_expires_at,omitempty"`

	Details *IssueDetails `json:"details,omitempty"`
}

// ID returns whichever request id field the server filled.
func (b ErrorBody) ID() string {
	if b.RequestID != "" {
		return b.RequestID
	}
	return b.RequestIDSnake
}

// Text returns the most descriptive human text in the body.
func (b ErrorBody) Text() string {
	switch {
	case b.ErrorDescription != "":
		return b.ErrorDescription
	case b.Message != "":
		return b.Message
	default:
		return b.Detail
	}
}

// IssueDetails carries zod validation issues (Coordinator shape 2).
type IssueDetails struct {
	Issues []Issue `json:"issues"`
}

// Issue is one validation issue.
type Issue struct {
	Path    IssuePath `json:"path"`
	Message string    `json:"message"`
}

// IssuePath is the path of an issue. PROTOCOL §4.1 gives its elements as
// strings; an element of another type (an array index sent as a number) is
// kept as its JSON text.
type IssuePath []string

// UnmarshalJSON accepts string and number elements. A path that is not an
// array is kept as one element (a string as its text, anything else as its
// JSON text) rather than refused: an error here would stop the decoding of
// the whole error body, and lose the request id that may follow.
func (p *IssuePath) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		var s string
		if json.Unmarshal(b, &s) != nil {
			s = string(b)
		}
		*p = IssuePath{s}
		return nil
	}
	out := make(IssuePath, 0, len(raw))
	for _, r := range raw {
		var s string
		if json.Unmarshal(r, &s) != nil {
			s = string(r) // a number as its decimal text; anything else as sent
		}
		out = append(out, s)
	}
	*p = out
	return nil
}

// Summary lists the first n issues as "path: message" joined by "; ",
// then how many more there are; an empty path reads "(body)".
func (d *IssueDetails) Summary(n int) string {
	if d == nil {
		return ""
	}
	var b strings.Builder
	for i, is := range d.Issues {
		if i == n {
			b.WriteString("; and " + strconv.Itoa(len(d.Issues)-n) + " more")
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		if len(is.Path) == 0 {
			b.WriteString("(body)")
		} else {
			b.WriteString(strings.Join(is.Path, "."))
		}
		b.WriteString(": ")
		b.WriteString(is.Message)
	}
	return b.String()
}
