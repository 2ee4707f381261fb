package caracal

// The options of Spawn and SpawnService that describe the session.

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/caracal-go/caracal/internal/envelope"
)

// SpawnOption configures Spawn and SpawnService.
type SpawnOption func(*spawnConfig)

// spawnConfig collects the SpawnOptions.
type spawnConfig struct {
	labels   []string
	metadata map[string]any
	ttl      time.Duration
	parent   *Agent
	noParent bool
	grant    *Authority
	idemKey  string
	traceID  string
	err      error // the first invalid option value
	// service holds the options only SpawnService and AttachService take
	// (service.go); start refuses them for a task.
	service serviceConfig
}

func newSpawnConfig(opts []SpawnOption) spawnConfig {
	var c spawnConfig
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

func (c *spawnConfig) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("%w: "+format, append([]any{ErrInvalidRequest}, args...)...)
	}
}

// WithLabels sets the session's labels. Labels are the role names the zone's
// policy matches when the agent asks for a token (they become
// input.principal.labels), so a session that calls resources needs a label
// whose role grants the scopes it uses. At most 32 labels of 1 to 64
// characters, counted as the Coordinator counts them (in UTF-16 code units:
// a character outside the Basic Multilingual Plane, such as an emoji,
// counts twice); surrounding space is trimmed. Repeated WithLabels add up.
func WithLabels(labels ...string) SpawnOption {
	return func(c *spawnConfig) {
		for _, l := range labels {
			t := strings.TrimSpace(l)
			if t == "" || utf16Len(t) > maxLabelLen {
				c.fail("label %.80q must have 1 to %d characters", l, maxLabelLen)
				continue
			}
			c.labels = append(c.labels, t)
		}
		if len(c.labels) > maxLabels {
			c.fail("at most %d labels", maxLabels)
		}
	}
}

// WithMetadata stores m (JSON-encodable) with the session at the
// Coordinator, for audit. The map is copied (one level deep).
func WithMetadata(m map[string]any) SpawnOption {
	cp := make(map[string]any, len(m))
	for k, v := range m {
		cp[k] = v
	}
	return func(c *spawnConfig) { c.metadata = cp }
}

// WithTTL sets a task session's lifetime (up to 24 h, whole seconds rounded
// up). Without it the client's Config.DefaultTTL applies, else the
// Coordinator's default of one hour. Services have no TTL.
func WithTTL(d time.Duration) SpawnOption {
	return func(c *spawnConfig) {
		if d <= 0 || d > maxTTL {
			c.fail("WithTTL(%v): the TTL must be positive and at most %v", d, maxTTL)
			return
		}
		c.ttl = d
	}
}

// WithParent makes p the parent session, instead of the agent bound to the
// Spawn context. If the context binds a different agent, Spawn fails: pass
// p's context instead, or bind nothing.
func WithParent(p *Agent) SpawnOption {
	return func(c *spawnConfig) {
		if p == nil {
			c.fail("WithParent(nil): pass the parent agent, or WithoutParent for a root session")
			return
		}
		c.parent = p
	}
}

// WithoutParent starts a root session even when the Spawn context binds an
// agent: it runs under the application's own authority, not the bound
// agent's.
func WithoutParent() SpawnOption {
	return func(c *spawnConfig) { c.noParent = true }
}

// WithGrant sets the authority the child receives from its parent:
// Grant.Inherit() (the default), Grant.Narrow(...) or Grant.None().
func WithGrant(a Authority) SpawnOption {
	return func(c *spawnConfig) { c.grant = &a }
}

// WithIdempotencyKey sends key as the session start's Idempotency-Key
// instead of a generated one, so that repeating the Spawn (after a timeout
// whose outcome is unknown, say) returns the same session while it is live.
// The Coordinator ties a key to the authority record of the lifecycle token
// that first used it (PROTOCOL §4.2), so the replay works only while the
// client holds that token: from another process, or after the token was
// renewed, the same key fails with ErrConflict (idempotency_key_conflict).
// A session that must outlive its process is a service: see AttachService.
// A replayed session whose Grant.Narrow cannot be confirmed, or a replayed
// service whose lease cannot be taken over, is left running (the call that
// started it may hold it) and the error names it.
// At most 255 bytes, no control characters, no surrounding space.
func WithIdempotencyKey(key string) SpawnOption {
	return func(c *spawnConfig) {
		if key == "" || key != strings.TrimSpace(key) || len(key) > maxIdemKeyLen ||
			strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			c.fail("WithIdempotencyKey: the key must be 1 to %d bytes without control characters or surrounding space", maxIdemKeyLen)
			return
		}
		c.idemKey = key
	}
}

// WithTraceID sets the W3C trace id (32 lowercase hex, not all zero) of the
// new session, instead of the parent's or a fresh one.
func WithTraceID(id string) SpawnOption {
	return func(c *spawnConfig) {
		if !envelope.ValidTraceID(id) {
			c.fail("WithTraceID(%q): a trace id is 32 lowercase hex digits, not all zero", id)
			return
		}
		c.traceID = id
	}
}

// utf16Len is the length of s in UTF-16 code units, the unit of the
// Coordinator's string limits.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}
