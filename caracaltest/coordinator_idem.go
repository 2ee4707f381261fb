package caracaltest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/caracal-go/caracal/internal/wire"
)

// Idempotency receipt operations (PROTOCOL §4.2).
const (
	opSessionStart     = "session.start.v2"
	opDelegationCreate = "delegation.create.v2"
)

// idemKey reads and validates the Idempotency-Key header. It returns the key
// ("" when absent) or answers the request with shape 3 and returns false.
func (c *call) idemKey() (string, bool) {
	vals := c.r.Header.Values(wire.HeaderIdempotencyKey)
	switch {
	case len(vals) == 0:
		return "", true
	case len(vals) > 1:
		c.idemFail("idempotency_key_multiple", "Send exactly one Idempotency-Key header")
		return "", false
	}
	key := vals[0]
	valid := key != "" && key == strings.TrimSpace(key) && len(key) <= 255 && utf8.ValidString(key)
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			valid = false
		}
	}
	if !valid {
		c.idemFail("idempotency_key_invalid",
			"Idempotency-Key must be 1-255 bytes of UTF-8 without control characters or surrounding whitespace")
		return "", false
	}
	return key, true
}

// idempotency validates the request's Idempotency-Key and applies the
// receipt outcomes of §4.2. It returns the key ("" when absent) and the
// digest of the normalized request, or done when the request has been
// answered (bad key, replay, conflict, inactive result, receipt limit).
func (w *world) idempotency(c *call, op, scopeID string, normalized func() any, live func(id string) bool) (key, dig string, done bool) {
	key, ok := c.idemKey()
	if !ok {
		return "", "", true
	}
	if key == "" {
		return "", "", false
	}
	dig = digest(normalized())
	return key, dig, w.idemOutcome(c, op, scopeID, key, dig, live)
}

// digest is the SHA-256 of the canonical JSON (sorted keys) of v.
func digest(v any) string {
	raw := mustJSON(v)
	// Round-trip through a generic value so every object's keys are sorted.
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		panic(err)
	}
	sum := sha256.Sum256(mustJSON(generic))
	return hex.EncodeToString(sum[:])
}

// idemOutcome applies the receipt outcomes of §4.2 for a request carrying
// key. It answers the request and returns true when the outcome is final
// (replay, conflict, inactive, limit); false means: execute the request.
// live tells whether a stored result (session or edge id) is still live.
func (w *world) idemOutcome(c *call, op, scopeID, key, dig string, live func(id string) bool) bool {
	rk := receiptKey{operation: op, scopeID: scopeID, key: key}
	now := w.now()
	if rc := w.receipts[rk]; rc != nil {
		if !rc.expiresAt.After(now) {
			w.dropReceipt(rk)
		} else {
			switch {
			case rc.digest != dig:
				c.failWith(http.StatusConflict, wire.ErrorBody{Error: "idempotency_key_conflict",
					Message: "Idempotency-Key was already used for a different request"})
			case !live(rc.objectID):
				c.failWith(http.StatusConflict, wire.ErrorBody{Error: "idempotency_result_inactive",
					Message: "The result stored for this Idempotency-Key is no longer active"})
			default:
				c.rw.Header().Set("Content-Type", "application/json; charset=utf-8")
				c.rw.Header().Set(wire.HeaderReplayed, "true")
				c.rw.WriteHeader(rc.status)
				_, _ = c.rw.Write(rc.body)
			}
			return true
		}
	}
	scope := receiptScope{operation: op, scopeID: scopeID}
	if w.scopeLive[scope] >= w.limits.ReceiptsPerScope {
		w.pruneReceipts(scope)
	}
	if w.scopeLive[scope] >= w.limits.ReceiptsPerScope {
		c.fail(http.StatusTooManyRequests, "idempotency_receipt_limit_exceeded")
		return true
	}
	return false
}

// storeReceipt records a successful keyed result.
func (w *world) storeReceipt(op, scopeID, key string, generated bool, dig string, status int, body []byte, objectID string) {
	retention := idemRetention
	if generated {
		retention = idemRetentionGen
	}
	rk := receiptKey{operation: op, scopeID: scopeID, key: key}
	if _, exists := w.receipts[rk]; !exists {
		w.scopeLive[receiptScope{operation: op, scopeID: scopeID}]++
	}
	w.receipts[rk] = &receipt{
		digest:    dig,
		status:    status,
		body:      body,
		objectID:  objectID,
		expiresAt: w.now().Add(retention),
	}
}

func (w *world) dropReceipt(rk receiptKey) {
	if _, ok := w.receipts[rk]; ok {
		delete(w.receipts, rk)
		w.scopeLive[receiptScope{operation: rk.operation, scopeID: rk.scopeID}]--
	}
}

// pruneReceipts deletes the scope's expired receipts.
func (w *world) pruneReceipts(scope receiptScope) {
	now := w.now()
	for rk, rc := range w.receipts {
		if rk.operation == scope.operation && rk.scopeID == scope.scopeID && !rc.expiresAt.After(now) {
			w.dropReceipt(rk)
		}
	}
}
