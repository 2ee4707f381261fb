package caracal

// The options of VerifyTokens, the built-in verifier of Middleware.

import (
	"fmt"
	"slices"
	"strings"

	"github.com/caracal-go/caracal/internal/wire"
)

// VerifyOption configures VerifyTokens.
type VerifyOption func(*verifyConfig)

type verifyConfig struct {
	resource string
	issuer   string
	jwksURL  string
	scopes   []string
	session  bool
	apps     []string // whose session tokens are accepted
	cache    int      // 0: jwks.DefaultCacheSize; negative: off
	err      error    // the first invalid option value
}

func (c *verifyConfig) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// VerifyIssuer sets the STS issuer (its ISSUER_URL) tokens must carry in
// iss; the default is the configured STS URL.
func VerifyIssuer(issuer string) VerifyOption {
	return func(c *verifyConfig) { c.issuer = issuer }
}

// VerifyJWKSURL sets where the STS signing keys are fetched; the default is
// {STS URL}/.well-known/jwks.json?zone_id={zone}.
func VerifyJWKSURL(u string) VerifyOption {
	return func(c *verifyConfig) { c.jwksURL = u }
}

// RequireScopes refuses tokens that lack any of scopes (403
// insufficient_scope). A string may hold several space-separated scopes; an
// empty one makes Middleware fail.
func RequireScopes(scopes ...string) VerifyOption {
	s := wire.NormalizeScopes(scopes)
	// A blank entry (an unset variable, say) is an error rather than
	// dropped: RequireScopes("") would otherwise require nothing.
	var err error
	if i := slices.IndexFunc(scopes, func(s string) bool { return strings.TrimSpace(s) == "" }); i >= 0 {
		err = fmt.Errorf("caracal: RequireScopes: entry %d is empty; name the scopes every token must carry", i+1)
	}
	return func(c *verifyConfig) {
		c.scopes = s
		if err != nil {
			c.fail(err)
		}
	}
}

// AcceptSessionTokens also accepts use=session tokens: the lifecycle tokens
// agents send with Headers on direct calls that do not go through the
// Gateway. By default only the Gateway's use=resource tokens are accepted.
//
// A lifecycle token is not minted for a resource (its audience is the STS
// issuer), so it is accepted only from applications: the listed ones, or the
// middleware client's own application when none is listed. The request is
// then bound to the calling application; a lifecycle token names no session
// or delegation. An empty application id makes Middleware fail.
func AcceptSessionTokens(applications ...string) VerifyOption {
	apps := make([]string, len(applications))
	var err error
	for i, a := range applications {
		apps[i] = strings.TrimSpace(a)
		if apps[i] == "" && err == nil {
			err = fmt.Errorf("caracal: AcceptSessionTokens: entry %d is empty; name the applications, or list none for the client's own", i+1)
		}
	}
	return func(c *verifyConfig) {
		c.session, c.apps = true, apps
		if err != nil {
			c.fail(err)
		}
	}
}

// VerifyCacheSize sets how many verified tokens the middleware remembers
// (default 1024), so that a token presented again (a session token sent
// with every call, a retried request) costs a map lookup instead of a
// signature check. A remembered token is still refused once it expires or
// once its signing key leaves the zone's key set. n <= 0 turns the cache
// off. Behind the Gateway every request carries a token of its own, so
// there the cache rarely hits.
func VerifyCacheSize(n int) VerifyOption {
	if n <= 0 {
		n = -1
	}
	return func(c *verifyConfig) { c.cache = n }
}

// VerifyTokens makes the middleware verify Caracal tokens issued for
// resource (its identifier, e.g. "resource://tickets"): an ES256 signature by
// a key of the zone's STS key set (fetched with the client's HTTP client,
// cached five minutes, refetched on an unknown key id at most every 30 s),
// the issuer, resource in the audience, the configured zone, use=resource,
// expiry with 60 s leeway, the required Caracal claims and at most 10 hops.
// Session, delegation and hop are then bound from the token's claims (behind
// the Gateway the request carries no Caracal baggage). Verified tokens are
// remembered (see VerifyCacheSize). After the STS rotates its signing key,
// the first token under the new key id refetches the key set, unless a
// fetch for another unknown key id (or a failed fetch) came less than 30 s
// before: the token is then refused (401 invalid_token "unknown signing
// key") until those 30 s have passed. Revocation is not checked: a token
// verifies until it expires, even after its session or delegation ended; the
// Gateway checks revocation when it forwards the request the token came with.
func VerifyTokens(resource string, opts ...VerifyOption) MiddlewareOption {
	vc := &verifyConfig{resource: resource}
	apply(vc, opts)
	return func(c *middlewareConfig) {
		c.verify = vc
		c.n++
	}
}
