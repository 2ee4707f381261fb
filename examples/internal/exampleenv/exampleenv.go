// Package exampleenv connects the example programs to Caracal: to the
// deployment the environment configures, or, when none is configured, to an
// embedded caracaltest stack started in-process.
package exampleenv

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/caracal-go/caracal"
	"github.com/caracal-go/caracal/caracaltest"
)

// Env is a connected client and the resource the example calls.
type Env struct {
	Client *caracal.Client
	// Stack is the embedded stack, nil against a deployment.
	Stack *caracaltest.Stack
	// Resource is the resource identifier the example calls.
	Resource string
	// URL is the upstream base URL bound to Resource; requests under it go
	// through the Gateway.
	URL string
}

// Configured reports whether environ (os.Environ form) configures a Caracal
// deployment: CARACAL_CONFIG or any other CARACAL_* variable with a value.
func Configured(environ []string) bool {
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "CARACAL_") && v != "" {
			return true
		}
	}
	return false
}

// Connect returns a client for the deployment environ configures, or starts
// an embedded stack with stackOpts and returns a client of it. Against a
// deployment, the configuration must bind a resource for the example to call.
func Connect(environ []string, stackOpts ...caracaltest.Option) (*Env, error) {
	return connect(environ, true, stackOpts)
}

// ConnectUnbound is Connect for a program that calls no resource (a resource
// server, a worker): against a deployment it needs no resource binding, and
// Resource and URL may be empty.
func ConnectUnbound(environ []string, stackOpts ...caracaltest.Option) (*Env, error) {
	return connect(environ, false, stackOpts)
}

func connect(environ []string, needBinding bool, stackOpts []caracaltest.Option) (*Env, error) {
	if Configured(environ) {
		return connectDeployment(environ, needBinding)
	}
	st, err := caracaltest.New(stackOpts...)
	if err != nil {
		return nil, err
	}
	c, err := st.NewClient()
	if err != nil {
		return nil, errors.Join(err, st.Close())
	}
	const resource = "resource://tickets"
	return &Env{Client: c, Stack: st, Resource: resource, URL: st.UpstreamURL(resource)}, nil
}

func connectDeployment(environ []string, needBinding bool) (*Env, error) {
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	c, err := caracal.New(caracal.WithLookupEnv(func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}))
	if err != nil {
		return nil, err
	}
	bindings := c.Config().Bindings
	if len(bindings) == 0 {
		if !needBinding {
			return &Env{Client: c}, nil
		}
		return nil, errors.Join(
			errors.New("the configuration has no resource binding to call: set CARACAL_RESOURCES=resource://id=https://upstream"),
			c.Close(context.Background()))
	}
	b := bindings[0]
	return &Env{Client: c, Resource: b.ResourceID, URL: b.UpstreamPrefix}, nil
}

// Where names what the client is connected to, for the examples' output.
func (e *Env) Where() string {
	cfg := e.Client.Config()
	if e.Stack != nil {
		return fmt.Sprintf("zone %s as application %s (embedded Caracal stack)", cfg.ZoneID, cfg.ApplicationID)
	}
	return fmt.Sprintf("zone %s as application %s at %s", cfg.ZoneID, cfg.ApplicationID, cfg.CoordinatorURL)
}

// Close closes the client, then the embedded stack if there is one.
func (e *Env) Close(ctx context.Context) error {
	err := e.Client.Close(ctx)
	if e.Stack != nil {
		err = errors.Join(err, e.Stack.Close())
	}
	return err
}

// NewClient returns a second, independent client of the same application,
// as another process (or the same one after a restart) would have.
func (e *Env) NewClient(environ []string) (*caracal.Client, error) {
	if e.Stack != nil {
		return e.Stack.NewClient()
	}
	env, err := connectDeployment(environ, false)
	if err != nil {
		return nil, err
	}
	return env.Client, nil
}
