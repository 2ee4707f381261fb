package caracal

import "context"

// ClaimServiceClose claims s's close sequence as another closer (a
// concurrent Close, Client.Close, the end of its start context) does, and
// returns what runs the rest of that closer's sequence.
func ClaimServiceClose(s *Service) (claimed bool, finish func()) {
	return s.claimClose(), func() { s.closeSequence(context.Background(), ErrSessionClosed) }
}
