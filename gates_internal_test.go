package caracal

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The set of approval-gated pairs keeps at most prefetchMaxGated of them;
// once full it counts every pair as gated, the safe side, and not before.
func TestGateSetBoundCountsEveryPairGatedWhenFull(t *testing.T) {
	var g gateSet
	key := func(i int) gateKey { return gateKey{resource: "resource://r" + strconv.Itoa(i), scopes: "s:read"} }
	for i := range prefetchMaxGated - 1 {
		g.add(key(i))
	}
	assert.True(t, g.has(key(0)))
	assert.False(t, g.has(key(-1)), "a set with room tells the pairs it has not seen")

	g.add(key(prefetchMaxGated - 1))
	g.add(key(prefetchMaxGated))
	assert.Len(t, g.m, prefetchMaxGated, "no pair is kept past the bound")
	assert.True(t, g.has(key(-1)), "a full set counts a pair it has not seen as gated")
}
