package caracaltest

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestRecordUnmatchedCoordinatorRequestsHaveNoPattern: a Coordinator request
// no route serves (an unknown path, a known path with another method) is
// recorded with an empty Pattern and counted by Count(""), as at the STS,
// so that a test asserting its code reached no unknown route can fail.
func TestRecordUnmatchedCoordinatorRequestsHaveNoPattern(t *testing.T) {
	for _, m := range harnessModes {
		t.Run(m.name, func(t *testing.T) {
			s, hc := m.start(t)
			doReq(t, hc, "GET", s.CoordinatorURL()+"/nope", "", "")
			doReq(t, hc, "PUT", s.CoordinatorURL()+"/zones/zone-test/agents", "application/json", "{}")
			doReq(t, hc, "GET", s.STSURL()+"/nope", "", "")

			reqs := s.Requests()
			if assert.Len(t, reqs, 3) {
				for _, r := range reqs {
					assert.Empty(t, r.Pattern, "%s %s %s", r.Service, r.Method, r.Path)
				}
			}
			assert.Equal(t, 3, s.Count(""))
		})
	}
}
