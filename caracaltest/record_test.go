package caracaltest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRecordRedactsSecretsTheSTSRefuses: a client that puts its secret
// where the STS does not look for it (the query string, which seed-era
// clients parsed together with the body, or a body with ";" separators)
// is refused, and its secret stays out of the record all the same.
func TestRecordRedactsSecretsTheSTSRefuses(t *testing.T) {
	for _, m := range harnessModes {
		t.Run(m.name, func(t *testing.T) {
			s, hc := m.start(t)
			tok := fakeJWT(map[string]any{"use": "session", "jti": "jti-q", "sub": "app-test"})

			resp := doReq(t, hc, "POST", s.STSURL()+"/oauth/2/token?client_secret=hunter2&subject_token="+tok,
				"application/x-www-form-urlencoded", "grant_type=x")
			require.Equal(t, 400, resp.StatusCode)
			resp = doReq(t, hc, "POST", s.STSURL()+"/oauth/2/token",
				"application/x-www-form-urlencoded", "grant_type=x;client_secret=hunter3&zone_id=z")
			require.Equal(t, 400, resp.StatusCode)

			reqs := s.Requests()
			require.Len(t, reqs, 2)
			assert.Equal(t, "[redacted]", reqs[0].Query.Get("client_secret"))
			assert.Equal(t, "<use=session jti=jti-q>", reqs[0].Query.Get("subject_token"))
			assert.Equal(t, "z", reqs[1].Form.Get("zone_id"))
			for _, r := range reqs {
				dump := fmt.Sprintf("%v %v %s", r.Query, r.Form, r.Body)
				for _, secret := range []string{"hunter2", "hunter3", tok} {
					assert.NotContains(t, dump, secret)
				}
			}
		})
	}
}

// TestRecordRedactsSecretsInOtherBodyFormats: a token request whose body is
// JSON or multipart, not a form, is refused by the STS; the secret and
// tokens it carries stay out of the record whatever the declared type.
func TestRecordRedactsSecretsInOtherBodyFormats(t *testing.T) {
	for _, m := range harnessModes {
		t.Run(m.name, func(t *testing.T) {
			s, hc := m.start(t)
			tok := fakeJWT(map[string]any{"use": "session", "jti": "jti-j", "sub": "app-test"})
			bodies := []struct{ contentType, body string }{
				{"application/json", `{"grant_type":"x","client_secret":"hunter4","subject_token":"` + tok + `"}`},
				{"application/x-www-form-urlencoded", `{"client_secret":"hunter5"}`},
				{"multipart/form-data; boundary=XX", "--XX\r\nContent-Disposition: form-data; name=\"client_secret\"\r\n\r\nhunter6\r\n--XX--\r\n"},
			}
			for _, b := range bodies {
				resp := doReq(t, hc, "POST", s.STSURL()+"/oauth/2/token", b.contentType, b.body)
				require.Contains(t, []int{400, 415}, resp.StatusCode)
			}
			reqs := s.Requests()
			require.Len(t, reqs, len(bodies))
			for _, r := range reqs {
				dump := fmt.Sprintf("%v %v %s", r.Query, r.Form, r.Body)
				for _, secret := range []string{"hunter4", "hunter5", "hunter6", tok} {
					assert.NotContains(t, dump, secret)
				}
			}
		})
	}
}
