package caracal

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/caracal-go/caracal/internal/envelope"
	"github.com/caracal-go/caracal/internal/wire"
)

// router applies the route decision of PROTOCOL §8.1 (envelope.Router) to
// requests. It is built once per transport and never changes.
type router struct {
	r   *envelope.Router
	err error // an unusable gateway URL or binding: every request fails
}

// decision is where one request goes.
type decision struct {
	routed   bool
	target   *url.URL // the rewritten Gateway URL; nil when already targeted
	resource string
}

func newRouter(gatewayURL string, bindings []ResourceBinding) router {
	bs := make([]envelope.Binding, len(bindings))
	for i, b := range bindings {
		bs[i] = envelope.Binding(b)
	}
	r, err := envelope.NewRouter(gatewayURL, bs)
	if err != nil {
		// Config.Validate refuses such a configuration; a Config built
		// around it must not send bound requests straight to the upstream.
		return router{err: fmt.Errorf("caracal: the Gateway routing configuration is unusable, so no request is sent: %w", err)}
	}
	return router{r: r}
}

// decide routes req. It allocates only for a routed request.
func (r router) decide(req *http.Request) (decision, error) {
	if r.err != nil {
		return decision{}, r.err
	}
	var explicit string
	if vs := req.Header[wire.HeaderResource]; len(vs) > 0 {
		explicit = vs[0]
	}
	d, ok := r.r.Route(req.URL, explicit)
	if !ok {
		if strings.TrimSpace(explicit) != "" {
			// The caller asked for a governed request: sending it as it is
			// would reach the upstream without the Gateway.
			if !r.r.HasGateway() {
				return decision{}, errors.New("caracal: the request names a resource (X-Caracal-Resource) but no Gateway URL is configured, so it cannot be governed (set CARACAL_GATEWAY_URL or Config.GatewayURL)")
			}
			return decision{}, errors.New("caracal: the request names a resource (X-Caracal-Resource) but its URL cannot go through the Gateway: its path has a dot segment or a backslash (even percent-encoded, or once the binding prefix is removed), or it is an opaque URL without one; clean the path")
		}
		return decision{}, nil
	}
	if d.Targeted {
		if d.Resource == "" {
			return decision{}, errors.New("caracal: a request to the Gateway needs an X-Caracal-Resource header (build it with GatewayRequest)")
		}
		// target nil: the request keeps its own (copied) URL.
		return decision{routed: true, resource: d.Resource}, nil
	}
	return decision{routed: true, target: d.URL, resource: d.Resource}, nil
}

// gatewayTarget is the URL of GatewayRequest (PROTOCOL §8.1, last paragraph).
func gatewayTarget(gatewayURL, path string) (string, error) {
	r, err := envelope.NewRouter(gatewayURL, nil)
	if err != nil {
		return "", fmt.Errorf("%w: GatewayRequest: %w", ErrInvalidRequest, err)
	}
	u, err := r.GatewayURL(path)
	if err != nil {
		return "", fmt.Errorf("%w: GatewayRequest: %w", ErrInvalidRequest, err)
	}
	return u.String(), nil
}
