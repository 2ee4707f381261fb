package caracaltest

// coordinatorRoutes returns the Coordinator's routes (PROTOCOL §4).
func (w *world) coordinatorRoutes() []route {
	return nil
}
