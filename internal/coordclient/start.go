package coordclient

// Session start: the keyed, retried POST /zones/{z}/agents, and the retire
// of a session whose start the caller gave up on.

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/caracal-go/caracal/internal/stsclient"
	"github.com/caracal-go/caracal/internal/wire"
)

// StartOptions carries the headers of a session start.
type StartOptions struct {
	// IdempotencyKey, if empty, is generated (and sent with
	// Idempotency-Key-Kind: generated).
	IdempotencyKey string
	Traceparent    string
	Tracestate     string
	// Abandon, if set, is called when Start gives up (the caller's ctx
	// ended, its deadline leaves no time for a retry, or the retries ran
	// out) on a start under a generated key that may have started a
	// session: nobody could ever reach that session. The retire it is given
	// finds the session by sending the start again and retires it; it is
	// detached from the caller's ctx and bounded by Timeout, and returns an
	// error when it found a session and could not retire it.
	Abandon func(retire func(context.Context) error)
}

// Start starts a session (POST /zones/{z}/agents).
//
// The request always carries an Idempotency-Key (generated unless given) and
// is sent again, with the same key and body, up to StartRetries times after a
// 5xx, a retryable 429 or a network failure. When the request leaves
// SubjectSessionID empty it is pinned to the sid of the lifecycle token of
// the first attempt, so that a retry after a token refresh replays the same
// digest instead of conflicting. When the Coordinator refuses a generated
// key because the application's receipt limit is reached (429
// idempotency_receipt_limit_exceeded: nothing executed), the start is sent
// once more without a key so that the limit never stops the application's
// agents, unless an earlier attempt may have executed (its session could
// still commit beside a keyless one); a caller-given key is never dropped.
func (c *Client) Start(ctx context.Context, req wire.StartSessionRequest, o StartOptions) (wire.Session, error) {
	path := c.agentsPath
	key, generated := o.IdempotencyKey, false
	if key == "" {
		key, generated = NewIdempotencyKey(), true
	}
	pinnable := req.SubjectSessionID == ""
	executed := false // an earlier attempt may have committed
	keyless := false

	for retries := 0; ; {
		hdr := http.Header{}
		if !keyless {
			hdr.Set(wire.HeaderIdempotencyKey, key)
			if generated {
				hdr.Set(wire.HeaderIdempotencyKind, "generated")
			}
		}
		if o.Traceparent != "" {
			hdr.Set("Traceparent", o.Traceparent)
			if o.Tracestate != "" {
				hdr.Set("Tracestate", o.Tracestate)
			}
		}
		body := func(tok stsclient.Token) ([]byte, error) {
			// Re-pin only while no attempt can have committed: a 401 stores
			// no receipt, so the refreshed token's record may replace the
			// revoked one; after a possible commit the digest must not move.
			if pinnable && (req.SubjectSessionID == "" || !executed) {
				req.SubjectSessionID = tok.SID
			}
			return json.Marshal(req)
		}
		var s wire.Session
		out := c.do(ctx, http.MethodPost, path, hdr, body, &s)
		if out.err == nil {
			if s.AgentSessionID == "" {
				return wire.Session{}, invalid(http.MethodPost, path, "no agent_session_id")
			}
			if !wire.ValidID(s.AgentSessionID) || (s.DelegationEdgeID != nil && *s.DelegationEdgeID != "" && !wire.ValidID(*s.DelegationEdgeID)) ||
				(s.SubjectAuthorityRecordID != "" && !wire.ValidID(s.SubjectAuthorityRecordID)) {
				return wire.Session{}, invalid(http.MethodPost, path, "an id that is not a Coordinator id")
			}
			if why := startMismatch(s, req, c.cfg.ZoneID); why != "" {
				return wire.Session{}, invalid(http.MethodPost, path, why)
			}
			if req.Lifecycle == wire.LifecycleService && s.LeaseGeneration < 1 {
				return wire.Session{}, invalid(http.MethodPost, path, "service session without a lease generation")
			}
			s.Replayed = out.header.Get(wire.HeaderReplayed) == "true"
			return s, nil
		}
		// Only while no earlier attempt can have executed: one that may
		// still commit would leave a keyless start a second session.
		if out.api != nil && out.api.Code == codeReceiptLimit && generated && !keyless && !executed {
			level := slog.LevelWarn
			if c.receiptLimitSeen.Swap(true) {
				level = slog.LevelDebug
			}
			c.cfg.Logger.LogAttrs(ctx, level, "caracal: idempotency receipt limit reached; starting the session without a key")
			keyless = true
			continue
		}
		executed = executed || out.ambiguous
		// A session started under a generated key is known to no one once
		// the caller gives up: have it retired rather than leave it holding
		// a place in the zone's session limits.
		abandon := func() {
			switch {
			case keyless && executed:
				// No key leads back to what it may have started.
				c.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "caracal: a session start sent without an idempotency key got no clear answer; a session it may have started cannot be found, and runs until its TTL or lease ends",
					slog.String("error", out.err.Error()))
			case generated && executed && o.Abandon != nil:
				o.Abandon(func(bg context.Context) error { return c.abandonStart(bg, path, hdr, body, req) })
			}
		}
		// Without a key a resend could start a second session.
		if keyless || !out.retryable || retries >= StartRetries {
			abandon()
			return wire.Session{}, out.err
		}
		if err := c.pause(ctx, retries, out); err != nil {
			abandon()
			return wire.Session{}, gaveUp(out.err, err)
		}
		retries++
	}
}

// abandonStart retires the session that a start the caller gave up on may
// have started: it sends the start once more with the same key and body,
// which replays the session if there is one (or starts one), and retires
// what comes back. Detached from ctx's cancellation and bounded by Timeout.
// It fails only when it found a session and retiring it failed.
func (c *Client) abandonStart(ctx context.Context, path string, hdr http.Header, body bodyFunc, req wire.StartSessionRequest) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), Timeout)
	defer cancel()
	var s wire.Session
	out := c.do(dctx, http.MethodPost, path, hdr, body, &s)
	if out.err == nil && s.AgentSessionID != "" && !wire.ValidID(s.AgentSessionID) {
		// Nothing can be retired under it, and the Coordinator's text
		// stays out of the log.
		out.err = invalid(http.MethodPost, path, "an id that is not a Coordinator id")
	} else if why := startMismatch(s, req, c.cfg.ZoneID); out.err == nil && why != "" {
		// About another session, which is not this start's to retire.
		out.err = invalid(http.MethodPost, path, why)
	}
	switch {
	case out.api != nil && !out.retryable && out.api.StatusCode != http.StatusUnauthorized &&
		out.api.Code != "idempotency_key_conflict":
		// Refused after the key was looked up (its result no longer live,
		// or the parent gone, say): no live session was started under it.
		return nil
	case out.err != nil:
		c.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "caracal: a session start was given up; a session it may have started runs until its TTL or lease ends",
			slog.String("error", out.err.Error()))
	case s.AgentSessionID != "":
		if err := c.Retire(dctx, s.AgentSessionID, int64(s.LeaseGeneration)); err != nil {
			c.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "caracal: retiring the session of a start that was given up failed",
				slog.String("session", s.AgentSessionID), slog.String("error", err.Error()))
			return fmt.Errorf("caracal: retiring session %s, whose start was given up: %w", s.AgentSessionID, err)
		}
	}
	return nil
}

// startMismatch says how a start answer contradicts the start asked for in
// zone ("" when it does not): such an answer is about another session, or
// tells a TTL the session does not have. A field the answer omits is not
// judged.
func startMismatch(s wire.Session, req wire.StartSessionRequest, zone string) string {
	lifecycle := cmp.Or(req.Lifecycle, wire.LifecycleTask)
	parent := ""
	if s.ParentID != nil {
		parent = *s.ParentID
	}
	switch {
	case s.ZoneID != "" && s.ZoneID != zone:
		return "a session of another zone"
	case s.ApplicationID != "" && s.ApplicationID != req.ApplicationID:
		return "a session of another application"
	case s.SubjectAuthorityRecordID != "" && req.SubjectSessionID != "" &&
		wire.CanonicalID(s.SubjectAuthorityRecordID) != wire.CanonicalID(req.SubjectSessionID):
		return "a session of another subject"
	case s.Lifecycle != "" && s.Lifecycle != lifecycle:
		return "a session of another lifecycle"
	case wire.CanonicalID(parent) != wire.CanonicalID(req.ParentID):
		return "a session under another parent"
	case req.TTLSeconds > 0 && s.TTLSeconds != nil && *s.TTLSeconds > req.TTLSeconds:
		return "a session that lives longer than asked"
	case s.DelegationEdgeID != nil && *s.DelegationEdgeID != "" && (req.ParentID == "" || req.ParentAuthority == wire.AuthorityNone):
		// Only a child that inherits can have an edge from its start.
		return "a delegation the session cannot have inherited"
	}
	return ""
}
