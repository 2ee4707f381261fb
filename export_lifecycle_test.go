package caracal

// TrackedSizes reports how many handles the client tracks, how many of them
// have received delegations recorded, and how many failed retires it keeps.
func TrackedSizes(c *Client) (open, received, unretired int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.open), len(c.received), len(c.unretired)
}

// IndexedSessions reports how many session ids the client's index of open
// sessions by lineage holds.
func IndexedSessions(c *Client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lineage)
}

// IndexedServices reports how many service ids the client's index of open
// services holds.
func IndexedServices(c *Client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.services)
}

// ReceivedBy reports how many received delegations the client keeps for
// the handle s.
func ReceivedBy(c *Client, s *Session) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.received[s])
}
