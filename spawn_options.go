package caracal

// The options of Spawn, SpawnService and AttachService: the session they
// describe and, for services, how the lease is renewed.

import (
	"fmt"
	"reflect"
	"slices"
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
	apply(&c, opts)
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
// The slice is copied.
func WithLabels(labels ...string) SpawnOption {
	labels = slices.Clone(labels)
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
// Coordinator's default of one hour. A d that is zero, negative or over
// 24 h fails Spawn with ErrInvalidRequest before any call. Services have no
// TTL: SpawnService refuses WithTTL.
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
// Spawn context. If the context binds a different agent, p is nil, or
// WithoutParent is given too, Spawn fails with ErrInvalidRequest before any
// call: pass p's context instead, or bind nothing.
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
// At most 255 bytes of printable ASCII, no surrounding space. (The
// Coordinator reads a header's other bytes as Latin-1, so it would trim and
// measure another key than the one sent.)
func WithIdempotencyKey(key string) SpawnOption {
	return func(c *spawnConfig) {
		if key == "" || key[0] == ' ' || key[len(key)-1] == ' ' || len(key) > maxIdemKeyLen ||
			strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
			c.fail("WithIdempotencyKey: the key must be 1 to %d bytes of printable ASCII without surrounding space", maxIdemKeyLen)
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

// serviceConfig collects the options that only SpawnService and
// AttachService accept. Spawn refuses a spawnConfig whose service part is
// set (see checkTask).
type serviceConfig struct {
	set        bool          // a service-only option was given
	background bool          // renew in the background
	interval   time.Duration // > 0: fixed cadence; 0: derived from the lease
	onLost     func(error)
	err        error // an invalid option value, reported by SpawnService
}

// checkTask is what Spawn calls: the service-only options make no sense for
// a task session, and silently ignoring a heartbeat option would leave the
// caller believing something renews.
func (sc *serviceConfig) checkTask() error {
	if sc.set {
		return fmt.Errorf("%w: HeartbeatInterval, HeartbeatAuto and OnLeaseLost apply to SpawnService and AttachService only", ErrInvalidRequest)
	}
	return nil
}

// HeartbeatInterval renews the service lease in the background every d, so
// that the lease stays current while the caller's code is busy. Whatever d
// is, a renewal is due before two thirds of the remaining lease have passed,
// so an interval longer than the lease cannot let it lapse. d must be at
// least one second: a shorter one, zero and negatives included, fails
// SpawnService or AttachService with ErrInvalidRequest before any call. The
// last of HeartbeatInterval and HeartbeatAuto given wins. Without either,
// the lease is renewed only by Service.Heartbeat.
func HeartbeatInterval(d time.Duration) SpawnOption {
	return func(c *spawnConfig) {
		c.service.set = true
		c.service.background = true
		c.service.interval = d
		c.service.err = nil
		if d < time.Second {
			c.service.err = fmt.Errorf("%w: HeartbeatInterval(%v): the interval must be at least 1s", ErrInvalidRequest, d)
		}
	}
}

// HeartbeatAuto renews the service lease in the background at a cadence
// derived from the lease: about a third of the remaining lease (clamped to
// [1s, 5min]) with ±10% jitter, so about every 40 s for the
// Coordinator's default 120 s lease. The last of HeartbeatInterval and
// HeartbeatAuto given wins.
func HeartbeatAuto() SpawnOption {
	return func(c *spawnConfig) {
		c.service.set = true
		c.service.background = true
		c.service.interval = 0
		c.service.err = nil
	}
}

// OnLeaseLost registers f to run once when the service lease is lost (the
// Coordinator fenced, suspended or no longer knows the session, the local
// deadline passed without a renewal, or RevokeDelegation here revoked a
// delegation it held). f receives the same error as
// context.Cause(s.Context()). It runs in its own goroutine, so it never delays
// the renewal loop and may call Close; it is not called when the service is
// closed or its context is cancelled.
func OnLeaseLost(f func(error)) SpawnOption {
	return func(c *spawnConfig) {
		c.service.set = true
		c.service.onLost = f
	}
}

// serviceOnly reports whether every option in opts is a service option: the
// only ones an attach can honour (the Coordinator keeps the labels, parent and
// grant of the original start). Each option is applied to an empty
// configuration on its own, so that options added later are covered too.
func serviceOnly(opts []SpawnOption) bool {
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		var probe spawnConfig
		opt(&probe)
		probe.service = serviceConfig{}
		if !reflect.ValueOf(probe).IsZero() {
			return false
		}
	}
	return true
}
