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

// FireDuringStep runs a background renewal step of s while another one is
// marked in progress: what happens when a renewal by hand re-arms the timer
// just before the step it fired takes the handle's lock.
func FireDuringStep(s *Service) {
	s.mu.Lock()
	s.stepping = true
	s.mu.Unlock()
	s.fire()
	s.mu.Lock()
	s.stepping = false
	s.mu.Unlock()
}
