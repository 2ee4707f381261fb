package caracal

// This file checks the configuration's URLs: service URLs and resource
// binding prefixes.

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/caracal-go/caracal/internal/apierr"
)

// checkServiceURL applies the URL rules of PROTOCOL §2.6 to one service URL.
func checkServiceURL(name, raw string, production, allowInsecure bool) error {
	u, err := parseHTTPURL(raw)
	if err != nil {
		return fmt.Errorf("caracal: %s: %w", name, err)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("caracal: %s: %s has a query or fragment, where the request paths are appended (give the base URL only, e.g. https://caracal.example.com)", name, showURL(raw))
	}
	if production && u.Scheme == "http" && !isLoopback(u.Hostname()) && !allowInsecure {
		return fmt.Errorf("caracal: %s: %s is not https, which CARACAL_ENV=production requires for non-loopback hosts (use https, or set CARACAL_ALLOW_INSECURE_CONFIG_URLS=true)", name, printURL(raw))
	}
	return nil
}

// checkNoUserinfo refuses a Gateway URL with a user:password part, which
// the Gateway routing does not accept.
func checkNoUserinfo(name, raw string) error {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return fmt.Errorf("caracal: %s: %s has a user:password part, which the Gateway routing does not accept (remove it)", name, showURL(raw))
	}
	return nil
}

// insecureURL reports whether raw is a plain-http URL to a non-loopback host
// (the URLs CARACAL_ALLOW_INSECURE_CONFIG_URLS lets through in production).
func insecureURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && strings.EqualFold(u.Scheme, "http") && !isLoopback(u.Hostname())
}

// parseHTTPURL accepts an absolute http or https URL with a host, and a port
// from 1 to 65535 if it names one.
func parseHTTPURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("%s is not an absolute http or https URL with a host (want e.g. https://caracal.example.com)", showURL(raw))
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%s is not an http or https URL (want e.g. https://caracal.example.com)", showURL(raw))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return nil, fmt.Errorf("%s has port %s; want a port from 1 to 65535, or none for the scheme's default", showURL(raw), p)
		}
	}
	return u, nil
}

// showURL quotes a URL for an error message, masked as printURL does. It
// quotes resource identifiers too: a URL written where one belongs (a bare
// CARACAL_RESOURCES entry whose query holds "=", swapped WithBinding
// arguments) may carry a password.
func showURL(raw string) string {
	return strconv.Quote(printURL(raw))
}

// printURL is raw as messages and logs show it (apierr.ShowURL): a
// password masked, and the values of its query and its fragment too.
func printURL(raw string) string { return apierr.ShowURL(raw) }

// isLoopback reports whether host is localhost or a loopback IP.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkBinding validates one binding: a non-empty resource identifier and an
// absolute http/https upstream prefix with a host.
func checkBinding(resourceID, prefix string) error {
	var errs []string
	if strings.TrimSpace(resourceID) == "" {
		errs = append(errs, "the resource id is empty")
	}
	if strings.TrimSpace(prefix) == "" {
		errs = append(errs, "the upstream prefix is empty")
	} else if u, err := parseHTTPURL(prefix); err != nil {
		errs = append(errs, "upstream prefix "+err.Error())
		if _, err := parseHTTPURL(resourceID); err == nil {
			errs = append(errs, "the resource id is an http(s) URL and the upstream prefix is not: the two look swapped (a binding reads resource=upstream_prefix, the resource identifier first)")
		}
	} else if u.User != nil {
		errs = append(errs, "upstream prefix "+showURL(prefix)+" has a user:password part, which the Gateway routing does not accept (remove it)")
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}
