package envelope

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/caracal-go/caracal/internal/apierr"
)

// maxDecodeRounds is how many times HasDotSegment percent-decodes a path,
// as the Gateway does before refusing traversal (PROTOCOL §8.2 row 9).
const maxDecodeRounds = 8

// HasDotSegment reports whether path has a "." or ".." segment or a
// backslash, as it is or after up to 8 rounds of percent-decoding. A path
// that still decodes further after 8 rounds also reports true: such a path
// is never legitimate, and refusing to route it is the safe answer.
func HasDotSegment(path string) bool {
	for round := 0; ; round++ {
		if dotOrBackslash(path) {
			return true
		}
		if strings.IndexByte(path, '%') < 0 {
			return false
		}
		decoded := DecodeValue(path)
		if decoded == path {
			return false
		}
		if round == maxDecodeRounds {
			return true
		}
		path = decoded
	}
}

func dotOrBackslash(p string) bool {
	if strings.IndexByte(p, '\\') >= 0 {
		return true
	}
	if strings.IndexByte(p, '.') < 0 {
		return false
	}
	for p != "" {
		var seg string
		seg, p, _ = strings.Cut(p, "/")
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// Binding routes upstream URLs under UpstreamPrefix through the Gateway as
// resource ResourceID. It has the fields of caracal.ResourceBinding, so one
// converts to the other.
type Binding struct {
	ResourceID     string
	UpstreamPrefix string
}

// Decision is the outcome of Router.Route for a routed request.
type Decision struct {
	// URL is the rewritten request URL; nil when Targeted (the URL is
	// already the Gateway's and is used unchanged). The Host header must be
	// set to URL.Host.
	URL *url.URL
	// Resource is the X-Caracal-Resource value to send: the binding's
	// resource or the explicit one. When Targeted it is the explicit
	// resource and may be empty.
	Resource string
	// Targeted reports a request that was already addressed to the Gateway.
	Targeted bool
}

// Router makes the client-side route decision and URL rewrite of PROTOCOL
// §8.1 for one gateway URL and a set of bindings. It is immutable and safe
// for concurrent use; build it once per client or transport.
type Router struct {
	gateway bool   // a gateway URL is configured
	scheme  string // lowercase
	host    string // host[:port] as configured
	path    string // decoded base path, no trailing "/"
	rawPath string // escaped base path, no trailing "/"
	// escapedBase: the base path has an escaping of its own to keep.
	escapedBase bool
	bindings    []routeBinding
}

type routeBinding struct {
	resource string
	scheme   string
	host     string
	path     string // decoded prefix path, no trailing "/"; "" matches every path
	rawPath  string // escaped prefix path, no trailing "/"
}

// NewRouter parses the gateway URL and the bindings. An empty gateway gives
// a Router that routes nothing (routing happens only with a configured
// gateway). Bindings are tried longest prefix path first, ties in the order
// given. A trailing "/" on a prefix path is ignored, so "https://h/v1/"
// and "https://h/v1" bind the same requests.
func NewRouter(gateway string, bindings []Binding) (*Router, error) {
	r := &Router{}
	if gateway != "" {
		u, err := parseBase(gateway)
		if err != nil {
			return nil, fmt.Errorf("gateway URL: %w", err)
		}
		r.gateway = true
		r.scheme, r.host = u.Scheme, u.Host
		r.path, r.rawPath = trimSlash(u.Path), trimSlash(u.EscapedPath())
		r.escapedBase = u.RawPath != ""
	}
	for i, b := range bindings {
		if strings.TrimSpace(b.ResourceID) == "" {
			return nil, fmt.Errorf("binding %d (%q): empty resource id", i, b.UpstreamPrefix)
		}
		u, err := parseBase(b.UpstreamPrefix)
		if err != nil {
			return nil, fmt.Errorf("binding %q: upstream prefix: %w", b.ResourceID, err)
		}
		r.bindings = append(r.bindings, routeBinding{
			resource: b.ResourceID,
			scheme:   u.Scheme,
			host:     u.Host,
			path:     trimSlash(u.Path),
			rawPath:  trimSlash(u.EscapedPath()),
		})
	}
	slices.SortStableFunc(r.bindings, func(a, b routeBinding) int {
		return len(b.path) - len(a.path)
	})
	return r, nil
}

// parseBase parses an absolute http(s) URL without credentials.
func parseBase(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q: no host", s)
	}
	if u.User != nil {
		return nil, errors.New("credentials in the URL are not allowed")
	}
	return u, nil
}

func trimSlash(p string) string { return strings.TrimSuffix(p, "/") }

// HasGateway reports whether r was given a Gateway URL: without one, no
// request is routed.
func (r *Router) HasGateway() bool { return r != nil && r.gateway }

// Route decides whether a request for target goes through the Gateway
// (PROTOCOL §8.1 steps 2 and 3). explicitResource is the request's own
// X-Caracal-Resource (trimmed here). ok is false when the request is not
// routed and must be sent unchanged, without a Caracal credential.
//
// In order: a target path with a dot segment or backslash (HasDotSegment)
// is not routed, nor one that has one once an explicit resource's binding
// prefix is removed; a target inside the Gateway (same scheme and host[:port],
// hosts compared case-insensitively, path equal to or under the gateway
// base path) is Targeted and not rewritten; a target with an explicit
// resource is rewritten, with the binding of that resource if there is one
// (else the path is kept as it is); otherwise the first binding whose
// scheme and host match and whose prefix path is empty, equal to the target
// path, or a parent of it, is used.
//
// The rewritten URL is the gateway's scheme and host, the gateway base path
// and the target path, whose binding prefix path is removed (a leading "/"
// kept) when the prefix is a plain string prefix of it; the query is kept,
// the fragment and any userinfo dropped.
func (r *Router) Route(target *url.URL, explicitResource string) (Decision, bool) {
	if r == nil || !r.gateway || target == nil || target.Opaque != "" || HasDotSegment(target.Path) {
		return Decision{}, false
	}
	explicitResource = strings.TrimSpace(explicitResource)
	if r.contains(target) {
		return Decision{Resource: explicitResource, Targeted: true}, true
	}
	if explicitResource != "" {
		for i := range r.bindings {
			if r.bindings[i].resource == explicitResource {
				// The prefix is removed as a plain string, so what is left
				// can be a dot segment ("/api.." under "/api") that the
				// Gateway refuses as traversal.
				u := r.rewrite(target, &r.bindings[i])
				if HasDotSegment(u.Path) {
					return Decision{}, false
				}
				return Decision{URL: u, Resource: explicitResource}, true
			}
		}
		return Decision{URL: r.rewrite(target, nil), Resource: explicitResource}, true
	}
	for i := range r.bindings {
		b := &r.bindings[i]
		if b.matches(target) {
			return Decision{URL: r.rewrite(target, b), Resource: b.resource}, true
		}
	}
	return Decision{}, false
}

// sameOrigin compares scheme and host[:port]; url.Parse already lowercases
// the scheme, and DNS names are case-insensitive.
func sameOrigin(u *url.URL, scheme, host string) bool {
	return strings.EqualFold(u.Scheme, scheme) && strings.EqualFold(u.Host, host)
}

// under reports whether path is base or below it; base has no trailing "/"
// and "" contains everything.
func under(path, base string) bool {
	return base == "" || path == base ||
		len(path) > len(base) && path[len(base)] == '/' && strings.HasPrefix(path, base)
}

func (r *Router) contains(u *url.URL) bool {
	return sameOrigin(u, r.scheme, r.host) && under(u.Path, r.path)
}

func (b *routeBinding) matches(u *url.URL) bool {
	return sameOrigin(u, b.scheme, b.host) && under(u.Path, b.path)
}

// rewrite builds the Gateway URL for target; b is nil for an explicit
// resource without a binding.
func (r *Router) rewrite(target *url.URL, b *routeBinding) *url.URL {
	path, raw := target.Path, ""
	if target.RawPath != "" {
		// Keep the caller's escaping (e.g. %2F) when it has one.
		raw = target.EscapedPath()
	}
	if b != nil && b.path != "" && strings.HasPrefix(path, b.path) {
		path = ensureSlash(path[len(b.path):])
		if raw != "" {
			if strings.HasPrefix(raw, b.rawPath) {
				raw = ensureSlash(raw[len(b.rawPath):])
			} else {
				raw = "" // the escaped forms disagree: re-escape from path
			}
		}
	}
	if path != "" && path[0] != '/' {
		// A path-relative target must not glue onto the base path's last
		// segment.
		path = "/" + path
		if raw != "" {
			raw = ensureSlash(raw)
		}
	}
	u := &url.URL{
		Scheme:     r.scheme,
		Host:       r.host,
		Path:       r.path + path,
		RawQuery:   target.RawQuery,
		ForceQuery: target.ForceQuery,
	}
	if raw != "" || r.escapedBase {
		if raw == "" {
			raw = (&url.URL{Path: path}).EscapedPath()
		}
		u.RawPath = r.rawPath + raw
	}
	return u
}

func ensureSlash(p string) string {
	if strings.HasPrefix(p, "/") {
		return p
	}
	return "/" + p
}

// GatewayURL returns the URL of path on the Gateway, for requests addressed
// explicitly to a resource: the gateway base URL, its trailing "/" trimmed,
// followed by path with a leading "/" ensured; a query in path is kept. It
// refuses an absolute path or one with an authority, a fragment, or a dot
// segment or backslash (HasDotSegment), and fails when no gateway URL is
// configured.
func (r *Router) GatewayURL(path string) (*url.URL, error) {
	if r == nil || !r.gateway {
		return nil, errors.New("no gateway URL is configured")
	}
	// The caller's path may carry a key in its query, or a user:password
	// when it is a whole URL given by mistake: errors show it masked.
	shown := apierr.ShowURL(path)
	if strings.HasPrefix(path, "//") {
		return nil, fmt.Errorf("path %q has an authority; pass only the path", shown)
	}
	if strings.IndexByte(path, '#') >= 0 {
		return nil, fmt.Errorf("path %q has a fragment", shown)
	}
	p, err := url.Parse(path)
	if err != nil {
		return nil, fmt.Errorf("path %q: %w", shown, apierr.HideURLUser(err))
	}
	if p.Scheme != "" || p.Host != "" || p.Opaque != "" {
		return nil, fmt.Errorf("path %q is an absolute URL; pass only the path", shown)
	}
	if HasDotSegment(p.Path) {
		return nil, fmt.Errorf("path %q has a dot segment or backslash", shown)
	}
	u := &url.URL{
		Scheme:     r.scheme,
		Host:       r.host,
		Path:       r.path + ensureSlash(p.Path),
		RawQuery:   p.RawQuery,
		ForceQuery: p.ForceQuery,
	}
	if p.RawPath != "" || r.escapedBase {
		u.RawPath = r.rawPath + ensureSlash(p.EscapedPath())
	}
	return u, nil
}
