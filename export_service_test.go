package caracal

import "context"

// ClaimServiceClose claims s's close sequence as another closer (a
// concurrent Close, Client.Close, the end of its start context) does, and
// returns what runs the rest of that closer's sequence.
func ClaimServiceClose(s *Service) (claimed bool, finish func()) {
	return s.claimClose(), func() { s.closeSequence(context.Background(), ErrSessionClosed) }
}

// AcquiringServices reports how many service ids the client keeps lease
// acquire state for.
func AcquiringServices(c *Client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.acquiring)
}
