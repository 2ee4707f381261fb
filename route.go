package caracal

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/caracal-go/caracal/internal/wire"
)

// router is the transport's route decision (PROTOCOL §8.1), computed from the
// configuration once.
type router struct {
	gw       *url.URL // nil: nothing is routed
	gwPath   string   // gateway base path without trailing "/"
	bindings []routeBinding
	err      error // an unusable gateway URL: every request fails
}

type routeBinding struct {
	resource string
	scheme   string
	host     string
	path     string // prefix path as configured (may be "" or "/")
}

// decision is where one request goes.
type decision struct {
	routed   bool
	target   *url.URL // the Gateway URL to send to
	resource string
}

func newRouter(gatewayURL string, bindings []ResourceBinding) router {
	if gatewayURL == "" {
		return router{}
	}
	gw, err := url.Parse(gatewayURL)
	if err != nil || gw.Host == "" || (gw.Scheme != "http" && gw.Scheme != "https") {
		return router{err: errors.New("caracal: the configured Gateway URL is not an absolute http(s) URL; no request is sent until it is fixed")}
	}
	r := router{gw: gw, gwPath: strings.TrimSuffix(gw.EscapedPath(), "/")}
	for _, b := range bindings {
		u, err := url.Parse(b.UpstreamPrefix)
		if err != nil || u.Host == "" {
			continue // Config.Validate refuses these; never route on a guess.
		}
		r.bindings = append(r.bindings, routeBinding{
			resource: b.ResourceID,
			scheme:   strings.ToLower(u.Scheme),
			host:     strings.ToLower(u.Host),
			path:     u.EscapedPath(),
		})
	}
	// Longest prefix first; a stable sort keeps configuration order on ties.
	sort.SliceStable(r.bindings, func(i, j int) bool {
		return len(r.bindings[i].host)+len(r.bindings[i].path) > len(r.bindings[j].host)+len(r.bindings[j].path)
	})
	return r
}

// decide routes req. It allocates only for a routed request.
func (r router) decide(req *http.Request) (decision, error) {
	if r.err != nil {
		return decision{}, r.err
	}
	if r.gw == nil || req.URL == nil {
		return decision{}, nil
	}
	u := req.URL
	explicit := strings.TrimSpace(req.Header.Get(wire.HeaderResource))

	if r.insideGateway(u) {
		if explicit == "" {
			return decision{}, errors.New("caracal: a request to the Gateway needs an X-Caracal-Resource header (use GatewayRequest)")
		}
		if unsafePath(u) {
			return decision{}, errUnsafePath
		}
		return decision{routed: true, target: u, resource: explicit}, nil
	}

	var b *routeBinding
	if explicit != "" {
		for i := range r.bindings {
			if r.bindings[i].resource == explicit {
				b = &r.bindings[i]
				break
			}
		}
	} else {
		for i := range r.bindings {
			if r.bindings[i].matches(u) {
				b = &r.bindings[i]
				break
			}
		}
		if b == nil {
			return decision{}, nil
		}
	}
	if unsafePath(u) {
		// Sending it directly would bypass the Gateway; sending it through
		// would be refused there. Neither is what the caller meant.
		return decision{}, errUnsafePath
	}
	resource := explicit
	if resource == "" {
		resource = b.resource
	}
	return decision{routed: true, target: r.rewrite(u, b), resource: resource}, nil
}

var errUnsafePath = errors.New("caracal: refusing a governed request whose path has a dot segment or a backslash (also percent-encoded); clean the path first")

// insideGateway: same scheme, same host[:port], path at or under the base.
func (r router) insideGateway(u *url.URL) bool {
	if !strings.EqualFold(u.Scheme, r.gw.Scheme) || !strings.EqualFold(u.Host, r.gw.Host) {
		return false
	}
	if r.gwPath == "" {
		return true
	}
	p := u.EscapedPath()
	return p == r.gwPath || strings.HasPrefix(p, r.gwPath+"/")
}

func (b *routeBinding) matches(u *url.URL) bool {
	if !strings.EqualFold(u.Scheme, b.scheme) || !strings.EqualFold(u.Host, b.host) {
		return false
	}
	if b.path == "" || b.path == "/" {
		return true
	}
	// A configured trailing "/" does not change what the prefix covers.
	pp := strings.TrimSuffix(b.path, "/")
	p := u.EscapedPath()
	return p == pp || strings.HasPrefix(p, pp+"/")
}

// rewrite builds the Gateway URL for u: the gateway's scheme, host and base
// path, then u's path (without the binding's prefix path when it has one)
// and query. The fragment is dropped.
func (r router) rewrite(u *url.URL, b *routeBinding) *url.URL {
	p := u.EscapedPath()
	if b != nil && b.path != "" && b.path != "/" {
		prefix := strings.TrimSuffix(b.path, "/")
		if strings.HasPrefix(p, prefix) {
			p = p[len(prefix):]
		}
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	full := r.gwPath + p
	out := &url.URL{Scheme: r.gw.Scheme, Host: r.gw.Host, RawQuery: u.RawQuery}
	if dec, err := url.PathUnescape(full); err == nil {
		out.Path = dec
		out.RawPath = full
		if out.EscapedPath() != full {
			out.RawPath = ""
		}
	} else {
		out.Path = full
	}
	return out
}

// unsafePath reports a dot segment or backslash in u's path after up to 8
// rounds of percent-decoding, as the Gateway checks it.
func unsafePath(u *url.URL) bool {
	p := u.EscapedPath()
	for range 8 {
		if hasDotSegmentOrBackslash(p) {
			return true
		}
		if !strings.Contains(p, "%") {
			return false
		}
		dec, err := url.PathUnescape(p)
		if err != nil || dec == p {
			return hasDotSegmentOrBackslash(dec)
		}
		p = dec
	}
	return hasDotSegmentOrBackslash(p)
}

func hasDotSegmentOrBackslash(p string) bool {
	if strings.IndexByte(p, '\\') >= 0 {
		return true
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// gatewayTarget is the URL of GatewayRequest (PROTOCOL §8.1, last paragraph).
func gatewayTarget(gatewayURL, path string) (string, error) {
	if strings.Contains(path, "#") {
		return "", errors.New("caracal: GatewayRequest path must not carry a fragment")
	}
	u, err := url.Parse(path)
	if err != nil {
		return "", fmt.Errorf("caracal: GatewayRequest path: %w", err)
	}
	if u.Scheme != "" || u.Host != "" || u.User != nil || strings.HasPrefix(path, "//") {
		return "", errors.New("caracal: GatewayRequest path must be relative to the Gateway, without scheme or host")
	}
	if unsafePath(u) {
		return "", errors.New("caracal: GatewayRequest path must not have dot segments or backslashes")
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return strings.TrimSuffix(gatewayURL, "/") + path, nil
}
