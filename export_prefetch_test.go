package caracal

import "net/http"

// PrefetchPools returns the number of mandate pools a transport built with
// WithPrefetch keeps (0 for any other RoundTripper).
func PrefetchPools(rt http.RoundTripper) int {
	t, ok := rt.(*transport)
	if !ok || t.pool == nil {
		return 0
	}
	t.pool.mu.Lock()
	defer t.pool.mu.Unlock()
	return len(t.pool.pools)
}
