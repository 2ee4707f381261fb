package caracaltest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"slices"
	"time"
)

// keyGrace is how long a rotated-out signing key stays in the zone's key set
// (PROTOCOL §3.9, Appendix A "key rotation grace").
const keyGrace = 24 * time.Hour

// newSigningKey generates a zone ES256 key with a fresh key id.
func newSigningKey() (*signingKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("caracaltest: generate signing key: %w", err)
	}
	return &signingKey{kid: newID(), private: priv}, nil
}

// rotateKey makes k the zone's current key. The current key becomes the
// previous one, listed until keyGrace from now; a key rotated out before it
// leaves the set at once, as the STS keeps only the current key and the
// previous one. Rotating publishes the key set. It takes w.mu.
func (w *world) rotateKey(k *signingKey) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cur := w.keys[0]
	prev := &signingKey{kid: cur.kid, private: cur.private, retires: w.now().Add(keyGrace)}
	w.keys = []*signingKey{k, prev}
	w.sts.keysPublished = true
}

// dropRetiredKeys removes the previous key once its grace has run out. The
// set is also pruned on every read of it, so that a key leaves exactly when
// its grace ends whatever the sweeper's cadence.
func (w *world) dropRetiredKeys(now time.Time) {
	w.keys = slices.DeleteFunc(w.keys, func(k *signingKey) bool {
		return !k.retires.IsZero() && !now.Before(k.retires)
	})
}
